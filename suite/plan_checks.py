"""Checks of a planned cell against its task and models, so a bad pairing fails at plan time.

A method serves some tasks (:func:`suite.methods.spec.serves`); a table of another task is an
error naming those it supports. A method names the taps it reads on each side (its losses'
inputs and its connectors' sources); each must be one the model's family declares
(:mod:`suite.families`). A loss whose class names teacher modules it reuses
(``reused_taps(inputs)``: the classifier for CrossKD, CIRKD and C2VKD, the rest of a detection
head for detection CrossKD) needs those taps on the teacher; a loss whose class lists
``DENSE_HEADS`` (mmdet head classes: LD needs GFL's box distributions) needs a student and a
teacher whose dense head (a two-stage detector's: its RPN head) is one of them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from suite.errors import SpecError


def check_method_task(method: str, task: str, where: str) -> None:
    """Raise :class:`SpecError` when ``method`` (``a+b`` for composites) does not serve ``task``."""
    from suite.methods.catalog import check_task

    try:
        check_task(method, task)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def method_taps(method: dict[str, Any]) -> dict[str, set[str]]:
    """``{"student": {...}, "teacher": {...}}``: the taps a resolved method record reads."""
    used: dict[str, set[str]] = {"student": set(), "teacher": set()}
    for loss in (method.get("losses") or {}).values():
        for inp in (loss.get("inputs") or {}).values():
            if inp["source"] in used:
                used[inp["source"]].add(inp["tap"])
    for conn in (method.get("connectors") or {}).values():
        for side in (conn.get("in_from"), conn.get("out_from")):
            if side and side[0] in used:
                used[side[0]].add(side[1])
    return used


def _loss_classes(method: dict[str, Any]) -> dict[str, type]:
    from suite.methods.catalog import loss_class

    return {name: loss_class(loss["type"]) for name, loss in (method.get("losses") or {}).items()}


@lru_cache(maxsize=64)
def dense_head_classes(model: str) -> tuple[str, ...]:
    """Class names (with bases) of ``model``'s dense head (``bbox_head`` of a one-stage mmdet
    detector, ``rpn_head`` of a two-stage one); empty when it has none (segmentors)."""
    from suite.models import family_of

    family = family_of(model)
    if getattr(family, "task", "segmentation") != "detection":
        return ()
    config = family.config(model, num_classes=80) or {}
    head = config.get("bbox_head") or config.get("rpn_head")
    if not isinstance(head, dict) or "type" not in head:
        return ()
    from mmdet.registry import MODELS

    cls = MODELS.get(head["type"])
    return tuple(c.__name__ for c in cls.__mro__) if cls is not None else (str(head["type"]),)


def _check_heads(method: dict[str, Any], models: dict[str, str], where: str) -> None:
    name = method.get("name", "?")
    for loss, cls in _loss_classes(method).items():
        wanted = tuple(getattr(cls, "DENSE_HEADS", ()) or ())
        if not wanted:
            continue
        for side, model in models.items():
            heads = dense_head_classes(model)
            if not set(wanted) & set(heads):
                has = f"a {heads[0]}" if heads else "no dense head"
                raise SpecError(f"{where}: loss {loss!r} of method {name!r} is defined for "
                                f"dense heads {', '.join(wanted)}; the {side} {model} has {has}")


def check_method_taps(method: dict[str, Any], student: str, teacher: str, where: str) -> None:
    """Raise :class:`SpecError` when ``method`` reads a tap ``student`` or ``teacher`` lacks, or
    needs a dense head they do not have."""
    from suite.methods.spec import Input
    from suite.models import taps

    models = {"student": student, "teacher": teacher}
    _check_heads(method, models, where)  # first: "needs a GFL head" says more than missing taps
    offered = {side: taps(model) for side, model in models.items()}
    for side, wanted in method_taps(method).items():
        missing = sorted(wanted - set(offered[side]))
        if missing:
            raise SpecError(f"{where}: method {method.get('name', '?')!r} needs the {side} tap(s) "
                            f"{missing}, which {models[side]} does not have; it has "
                            f"{sorted(offered[side])}")
    for loss, cls in _loss_classes(method).items():
        reused = getattr(cls, "reused_taps", None)
        inputs = {k: Input(**v) for k, v in
                  ((method.get("losses") or {})[loss].get("inputs") or {}).items()}
        missing = sorted(set(reused(inputs) if callable(reused) else ()) - set(offered["teacher"]))
        if missing:
            raise SpecError(f"{where}: loss {loss!r} of method {method.get('name', '?')!r} reuses "
                            f"the teacher's {missing}; {teacher} declares no such tap(s)")
