"""Where runs keep what they can rebuild: trained vocabularies, task features, pretraining examples."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$ALBERT_CACHE`, else ~/.cache/albert."""
    return Path(os.environ.get("ALBERT_CACHE", Path.home() / ".cache" / "albert"))
