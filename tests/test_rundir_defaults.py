"""Default run directories (never the same twice) and the default model of a fine-tuning run."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from albert.errors import AlbertError
from albert.rundir import claim_run_dir, default_model, hub_unavailable, newest_pretraining_run


def test_a_run_directory_is_named_by_time_and_never_reused(tmp_path):
    now = time.mktime((2025, 3, 4, 5, 6, 7, 0, 0, -1))
    first = claim_run_dir("pretrain", tmp_path, now=now)
    second = claim_run_dir("pretrain", tmp_path, now=now)  # the same second
    assert first.name == "pretrain-20250304-050607" and second.name == "pretrain-20250304-050607-2"
    assert first.is_dir() and second.is_dir()


def test_concurrent_claims_get_different_directories(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: claim_run_dir("finetune-ner", tmp_path, now=0.0), range(16)))
    assert len(set(dirs)) == 16


def test_torchrun_needs_an_explicit_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AlbertError, match="under torchrun give --output-dir"):
        claim_run_dir("pretrain", tmp_path)


def _final(root, name, mtime):
    final = root / name / "final"
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")
    os.utime(final, (mtime, mtime))
    return final


def test_the_newest_finished_pretraining_run_is_the_default_model(tmp_path):
    assert newest_pretraining_run(tmp_path) is None
    assert default_model(tmp_path)[0] == "albert-base-v2"
    old = _final(tmp_path, "pretrain-20250101-000000", 1000)
    new = _final(tmp_path, "pretrain-20240101-000000", 2000)  # finished later, whatever its name
    (tmp_path / "pretrain-20260101-000000").mkdir()  # still running: no final/
    _final(tmp_path, "finetune-ner-20260101-000000", 3000)  # not a pretraining run
    assert newest_pretraining_run(tmp_path) == new != old
    model, line = default_model(tmp_path)
    assert model == str(new) and f"starting from {new}, the newest pretraining run" in line


def test_an_unreachable_hub_model_says_what_to_do():
    e = hub_unavailable(AlbertError("'albert-base-v2' is not a local directory and could not be fetched from the "
                                    "Hugging Face hub or found in its cache (LocalEntryNotFoundError: offline)"))
    msg = str(e)
    assert "\n" not in msg and "python pretrain.py --corpus wiki" in msg and "--model DIR or --preset tiny" in msg
    assert "LocalEntryNotFoundError: offline" in msg
