"""The optional packages, and the one place that imports them. Each is imported on first use, so
the core install, and every command that does not use it, starts without it.

    package                  used by                                    installed by
    ray                      tune.py --backend ray                      pip install -e '.[ray]'
    matplotlib               the sweep report's plots                   pip install -e '.[plots]'
    torch.utils.tensorboard  --report-to tensorboard                    pip install -e '.[tensorboard]'
"""
from __future__ import annotations

import importlib
from types import ModuleType

INSTALL = {
    "ray": "pip install -e '.[ray]'",
    "matplotlib": "pip install -e '.[plots]'",
    "torch.utils.tensorboard": "pip install -e '.[tensorboard]'",
}


def load(name: str) -> ModuleType:
    """Import `name`, one of the packages above or a module inside one; ImportError when it is absent."""
    if not any(name == p or name.startswith(p + ".") for p in INSTALL):
        raise ValueError(f"{name} is not declared in albert/optional.py")
    return importlib.import_module(name)


def pyplot() -> ModuleType:
    """matplotlib.pyplot drawing to files (no display needed)."""
    load("matplotlib").use("Agg")
    return load("matplotlib.pyplot")
