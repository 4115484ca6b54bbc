"""Forward-hook recorders (MMRazor's ``ModuleOutputsRecorder``): keep named modules' outputs.

A tap names a module, optionally with an index into a tuple or list output:
``backbone[2]`` is the third map a backbone returns (SegFormer's MixVisionTransformer returns
four). A module called several times in one forward (a detection head shared by the FPN levels)
yields the list of its outputs, in call order; called once, its output itself.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

_INDEXED = re.compile(r"^(?P<module>[^\[\]]+)\[(?P<index>-?\d+)\]$")


def parse_tap(name: str) -> tuple[str, int | None]:
    """``"backbone[2]"`` -> ``("backbone", 2)``; ``"decode_head.conv_seg"`` -> (name, None)."""
    match = _INDEXED.match(name)
    if match is None:
        return name, None
    return match["module"], int(match["index"])


def _select(output: Any, index: int | None, name: str) -> Any:
    if index is None:
        return output
    if not isinstance(output, (tuple, list)):
        raise RuntimeError(f"tap {name!r}: the module returned a {type(output).__name__}, "
                           "not a tuple or list to index")
    return output[index]


class ModuleOutputsRecorder:
    """Records the outputs of named submodules of ``model`` on every forward.

    ``taps`` maps a tap name to one module name or a list of them (a list tap yields a list).
    Unknown module names are an error here, when the recorder is built.
    """

    def __init__(self, model: nn.Module, taps: dict[str, str | list[str]]) -> None:
        self.taps = dict(taps)
        self.outputs: dict[str, list[Any]] = {}
        modules = dict(model.named_modules())
        self._handles = []
        wanted = {parse_tap(n)[0] for v in self.taps.values() for n in ([v] if isinstance(v, str) else v)}
        for module in sorted(wanted):
            if module not in modules:
                raise KeyError(f"no module named {module!r} in {type(model).__name__}")
            self._handles.append(modules[module].register_forward_hook(self._hook(module)))

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: object, output: Any) -> None:
            self.outputs.setdefault(name, []).append(list(output) if isinstance(output, tuple) else output)

        return record

    def reset(self) -> None:
        self.outputs.clear()

    def _one(self, tap: str, name: str) -> Tensor | list[Any]:
        module, index = parse_tap(name)
        calls = self.outputs.get(module)
        if not calls:
            raise RuntimeError(f"tap {tap!r}: module {module!r} did not run in this forward")
        if len(calls) == 1:
            return _select(calls[0], index, name)
        return [_select(c, index, name) for c in calls]

    def get(self, tap: str) -> Tensor | list[Any]:
        names = self.taps[tap]
        if isinstance(names, str):
            return self._one(tap, names)
        return [self._one(tap, n) for n in names]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
