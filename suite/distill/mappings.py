"""Each loss's input mapping checked against its ``forward`` signature (MMRazor's habit), so a
method whose inputs do not fit its losses fails when the model is built, not at the first step."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

from torch import nn

from suite.errors import SuiteError


class LossMappingError(SuiteError):
    """A loss's inputs name arguments its ``forward`` lacks, or leave required ones out."""


def check_loss_inputs(loss: str, loss_cls: type[nn.Module], inputs: Iterable[str]) -> None:
    """Raise :class:`LossMappingError` unless ``inputs`` (argument names) fit ``loss_cls.forward``:
    each name is a parameter (or ``forward`` takes ``**kwargs``) and every parameter without a
    default is given."""
    params = list(inspect.signature(loss_cls.forward).parameters.values())[1:]  # without self
    given = set(inputs)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    unknown = sorted(given - named) if not takes_any else []
    required = [p.name for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    missing = [name for name in required if name not in given]
    if unknown or missing:
        problems = ([f"unknown argument(s) {unknown}"] if unknown else []) + \
                   ([f"missing required argument(s) {missing}"] if missing else [])
        raise LossMappingError(
            f"loss {loss!r} ({loss_cls.__name__}): {'; '.join(problems)}; its forward takes "
            f"({', '.join(p.name for p in params)})")
