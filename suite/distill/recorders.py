"""Forward-hook recorders (MMRazor's ``ModuleOutputsRecorder``): keep named modules' outputs."""

from __future__ import annotations

from torch import Tensor, nn


class ModuleOutputsRecorder:
    """Records the output of each named submodule of ``model`` on every forward.

    ``taps`` maps a tap name to one module name or a list of them (a list tap yields a list).
    """

    def __init__(self, model: nn.Module, taps: dict[str, str | list[str]]) -> None:
        self.taps = dict(taps)
        self.outputs: dict[str, Tensor] = {}
        modules = dict(model.named_modules())
        self._handles = []
        for name in sorted({n for v in self.taps.values() for n in ([v] if isinstance(v, str) else v)}):
            if name not in modules:
                raise KeyError(f"no module named {name!r} in {type(model).__name__}")
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            self.outputs[name] = output

        return record

    def reset(self) -> None:
        self.outputs.clear()

    def get(self, tap: str) -> Tensor | list[Tensor]:
        names = self.taps[tap]
        try:
            if isinstance(names, str):
                return self.outputs[names]
            return [self.outputs[n] for n in names]
        except KeyError as exc:
            raise RuntimeError(f"tap {tap!r}: module {exc} did not run in this forward") from exc

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
