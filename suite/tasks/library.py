"""Configs shipped inside the OpenMMLab libraries, named the mmengine way: ``mmseg::PATH``.

``library_config("mmseg::_base_/models/pspnet_r50-d8.py")`` loads the file ``PATH`` under the
installed package's ``.mim/configs``. mmengine resolves the same names for ``_base_`` entries,
but only through ``pkg_resources``, which this stack does not install; the package is found
here with :mod:`importlib` instead, and nothing else differs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mmengine.config import Config


def library_config_path(name: str) -> Path:
    """The file an ``mmseg::``/``mmdet::`` config name refers to (a clear error when absent)."""
    package, sep, relative = name.partition("::")
    if not sep or not package or not relative:
        raise ValueError(f"config name {name!r} is not of the form PACKAGE::PATH")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"config {name}: package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / ".mim" / "configs" / relative
    if not path.is_file():
        raise FileNotFoundError(f"config {name} not found: {path}")
    return path


def library_config(name: str) -> Config:
    """The mmengine :class:`Config` of an ``mmseg::``/``mmdet::`` config name."""
    return Config.fromfile(str(library_config_path(name)))
