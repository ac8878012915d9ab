"""The fine-tuning tasks by name: `get_task("sst2")`."""
from __future__ import annotations

from ..errors import AlbertError
from .base import Task
from .glue import GLUE_DEFAULTS, GlueTask
from .ner import NerTask
from .squad import SquadTask

TASK_NAMES = ("ner", *GLUE_DEFAULTS, "squad")


def get_task(name: str) -> Task:
    """A fresh task object for `name` (one of TASK_NAMES)."""
    key = name.lower().replace("-", "")
    if key == "ner":
        return NerTask()
    if key == "squad":
        return SquadTask()
    if key in GLUE_DEFAULTS:
        return GlueTask(key)
    raise AlbertError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")


__all__ = ["Task", "TASK_NAMES", "get_task", "GlueTask", "NerTask", "SquadTask"]
