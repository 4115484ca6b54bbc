"""``ConfigOnlyWandbVisBackend``: mmengine's W&B backend, minus ``run.log_code()``.

mmengine's ``WandbVisBackend.add_config`` calls ``log_code()`` on the current directory, which
walks and hashes every ``.py`` below it (a virtual environment included: ~15k files, ~10 s a
cell). This backend uploads the config only; the run records the git commit instead
(``git_sha`` in its config, see :func:`suite.tracking.vis_backends`, and in the cell's result).
Importing the module registers the backend in mmengine's ``VISBACKENDS``.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import VISBACKENDS
from mmengine.visualization import WandbVisBackend
from mmengine.visualization.vis_backend import force_init_env


@VISBACKENDS.register_module()
class ConfigOnlyWandbVisBackend(WandbVisBackend):
    """W&B backend whose ``add_config`` updates the run config and uploads no code."""

    @force_init_env
    def add_config(self, config: Any, **kwargs: Any) -> None:
        allow = bool((self._init_kwargs or {}).get("allow_val_change", False))
        self._wandb.config.update(config.to_dict(), allow_val_change=allow)
