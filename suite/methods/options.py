"""Option types of the registered methods, checked at plan time.

Types come from each method's declared defaults (``<NAME>_DEFAULTS`` or ``DEFAULTS`` of its
module); the valid values of text options from the modules that check them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from suite.methods.plugins import lookup
from suite.methods.registry import METHODS


def method_defaults(name: str) -> dict[str, Any] | None:
    """The defaults a method declares: ``<NAME>_DEFAULTS`` or ``DEFAULTS`` of its module."""
    factory = lookup(METHODS, name, "method")
    module = sys.modules.get(getattr(factory, "__module__", ""))
    for attr in (f"{getattr(factory, '__name__', name).upper()}_DEFAULTS", "DEFAULTS"):
        found = getattr(module, attr, None)
        if isinstance(found, dict):
            return found
    return None


def option_choices() -> dict[str, dict[str, tuple[str, ...]]]:
    """The valid values of each method's text (enum) options, from the modules that check them."""
    import baselines.cirkd
    import baselines.crosskd
    import baselines.fam
    import baselines.fgkd
    import baselines.kd
    import baselines.skd
    import baselines.tat
    from baselines._common import HolisticAdversarialLoss
    from suite.distill.connectors import NORMS

    critic = tuple(HolisticAdversarialLoss.D_OPTIMIZERS)
    return {
        "bcd": {"norm": tuple(NORMS), "context_mode": ("kl", "mse"),
                "context_reduction": ("row", "item")},
        "cirkd": {"contrast_size_rule": tuple(baselines.cirkd.CONTRAST_SIZE_RULES)},
        "crosskd": {"tap": tuple(baselines.crosskd.TAPS)},
        "cwt": {"reduction": ("mean", "sum_per_sample")},
        "fam": {"resize": tuple(baselines.fam.RESIZE_MODES)},
        "fgkd": {"background": tuple(baselines.fgkd.BACKGROUNDS)},
        "ifvd": {"kd_reduction": tuple(baselines.kd.REDUCTIONS), "d_optimizer": critic},
        "kd": {"reduction": tuple(baselines.kd.REDUCTIONS)},
        "sckd": {"mode": ("hard", "soft")},
        "skd": {"pixel_reduction": tuple(baselines.skd.PIXEL_REDUCTIONS), "d_optimizer": critic},
        "sstkd": {"d_optimizer": critic},
        "tat": {"tap": tuple(baselines.tat.TAPS)},
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(default: Any) -> tuple[str, Callable[[Any], bool]]:
    """(name, check) of the type an option with this default accepts."""
    if isinstance(default, bool):
        return "a boolean", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float):
        return "a number", _is_number
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, (list, tuple)):
        if not default:
            return "a list", lambda v: isinstance(v, (list, tuple))
        item, item_ok = _kind(default[0])
        return (f"a list (items: {item})",
                lambda v: isinstance(v, (list, tuple)) and all(item_ok(x) for x in v))
    if isinstance(default, dict):
        return "a mapping", lambda v: isinstance(v, dict)
    return "a number or null", lambda v: v is None or _is_number(v)  # None: off unless set


def check_option_types(method: str, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) for an option value of the wrong type or outside its choices.

    Types come from the method's declared defaults: a bool option takes a bool, an int option an
    integer, a float option any number, a list option a list (of the first default item's type),
    a text option one of its valid values (:func:`option_choices`), an option whose default is
    ``None`` a number or ``null``. Unknown option names are left to the method (it lists them).
    """
    if not isinstance(options, Mapping):
        raise ValueError(f"method {method!r}: options must be a mapping, got {options!r}")
    defaults = method_defaults(method)
    if defaults is None:
        return
    choices = option_choices().get(method, {})
    for key, value in options.items():
        if key not in defaults:
            continue
        if key in choices and value not in choices[key]:
            raise ValueError(f"method {method!r}: option {key} must be one of "
                             f"{', '.join(choices[key])}; got {value!r}")
        what, ok = _kind(defaults[key])
        if not ok(value):
            raise ValueError(f"method {method!r}: option {key} must be {what} "
                             f"(default {defaults[key]!r}); got {value!r}")
