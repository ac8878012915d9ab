"""The real Wikipedia slice and settings the pretraining-data tests share (fixtures in conftest.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from albert.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"))
WIKI_VALID = DATA / "wiki" / "wiki-valid.txt.gz"
needs_wiki = pytest.mark.skipif(not WIKI_VALID.is_file(), reason=f"no {WIKI_VALID} (set ALBERT_DATA)")

SEQ = 128
N_DOCS = 150
SPECIALS = [PAD_ID, 1, CLS_ID, SEP_ID, MASK_ID]
