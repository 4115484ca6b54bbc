"""Checks of a planned cell against its models, so a bad pairing fails at plan time.

A method names the taps it reads on each side (its losses' inputs and its connectors'
sources); each must be one the model's family declares (:mod:`suite.families`). A loss that
reuses the teacher's classifier (CrossKD, C2VKD) needs a ``classifier`` tap on the teacher.
"""

from __future__ import annotations

import inspect
from typing import Any

from suite.errors import SpecError


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


def _reuses_classifier(method: dict[str, Any]) -> list[str]:
    from suite.methods.catalog import loss_class

    return [name for name, loss in (method.get("losses") or {}).items()
            if "teacher_classifier" in inspect.signature(loss_class(loss["type"])).parameters]


def check_method_taps(method: dict[str, Any], student: str, teacher: str, where: str) -> None:
    """Raise :class:`SpecError` when ``method`` reads a tap ``student`` or ``teacher`` lacks."""
    from suite.models import taps

    models = {"student": student, "teacher": teacher}
    offered = {side: taps(model) for side, model in models.items()}
    for side, wanted in method_taps(method).items():
        missing = sorted(wanted - set(offered[side]))
        if missing:
            raise SpecError(f"{where}: method {method.get('name', '?')!r} needs the {side} tap(s) "
                            f"{missing}, which {models[side]} does not have; it has "
                            f"{sorted(offered[side])}")
    if "classifier" not in offered["teacher"]:
        users = _reuses_classifier(method)
        if users:
            raise SpecError(f"{where}: loss(es) {users} of method {method.get('name', '?')!r} "
                            f"reuse the teacher's classifier; {teacher} declares none")
