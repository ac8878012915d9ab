"""The fine-tuning tasks by name: `get_task("sst2")`. A new task is a module here and a line in TASKS."""
from __future__ import annotations

from functools import partial
from typing import Callable

from ..errors import AlbertError
from .base import Task
from .glue import GLUE_DEFAULTS, GlueTask
from .ner import ChunkTask, NerTask, PosTask
from .race import RaceTask
from .squad import SquadTask
from .squad2 import Squad2Task

# Name -> a constructor of a fresh task object, in the order `finetune.py --help` lists them.
TASKS: dict[str, Callable[[], Task]] = {
    "ner": NerTask,
    "chunk": ChunkTask,
    "pos": PosTask,
    **{name: partial(GlueTask, name) for name in GLUE_DEFAULTS},
    "squad": SquadTask,
    "squad2": Squad2Task,
    "race": RaceTask,
}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> Task:
    """A fresh task object for `name` (one of TASK_NAMES; "SST-2", "SQuAD2" spellings accepted)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise AlbertError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    return TASKS[key]()


__all__ = ["Task", "TASKS", "TASK_NAMES", "get_task", "ChunkTask", "GlueTask", "NerTask", "PosTask", "RaceTask",
           "SquadTask", "Squad2Task"]
