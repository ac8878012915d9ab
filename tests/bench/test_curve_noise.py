"""bench/curve_noise.py: its argument, its summary and its check of a table's pretrained start."""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import curve_noise  # noqa: E402


def test_a_target_is_a_table_and_its_indices():
    assert curve_noise.parse_target("bench/results/curves-ner.json:87,137") == (
        Path("bench/results/curves-ner.json"), [87, 137])
    for bad in ("curves-ner.json", "curves-ner.json:", "curves-ner.json:87,x", "curves-ner.json:87",
                "curves-ner.json:87,137,3"):
        with pytest.raises(argparse.ArgumentTypeError, match="curves-ner.json"):
            curve_noise.parse_target(bad)


def test_the_summary_is_the_mean_and_spread_over_seeds_with_seed_0_the_tables_rerun():
    finals = {2: 0.4, 0: 0.5, 1: 0.0, 3: 0.3}  # as the pool finishes them, out of order
    row = curve_noise.summarise(finals, table_final=0.5)
    assert row["finals"] == [0.5, 0.0, 0.4, 0.3] and row["seed0_rerun"] == 0.5 and row["table"] == 0.5
    assert row["mean"] == pytest.approx(0.3) and row["sd"] == pytest.approx(statistics.stdev([0.5, 0.0, 0.4, 0.3]))


def test_a_table_whose_pretrained_start_changed_is_refused(tmp_path):
    model = tmp_path / "final"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    table = {"task": "ner", "model": str(model), "model_sha256": hashlib.sha256(b"weights").hexdigest(),
             "master_seed": 0, "configs": []}
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(table))
    assert curve_noise.load_table(path)["task"] == "ner"
    (model / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(SystemExit, match="not the model the table was recorded from"):
        curve_noise.load_table(path)
    (model / "model.safetensors").unlink()
    with pytest.raises(SystemExit, match="is not on this machine"):
        curve_noise.load_table(path)
