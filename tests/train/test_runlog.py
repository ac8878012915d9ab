"""The run's log: log.jsonl always; TensorBoard only when asked for (--report-to tensorboard), with
the same numbers."""
from __future__ import annotations

import json
import sys

import pytest

from albert.errors import AlbertError
from albert.train import Trainer

from test_loop import TRAIN, Toy, collate, config, evaluate


def train(out, **kw):
    trainer = Trainer(Toy(), config(out, epochs=2, log_every=2, **kw), TRAIN, collate, evaluate=evaluate)
    trainer.train()


def test_tensorboard_is_opt_in(tmp_path):
    """Installed or not, TensorBoard is written only when asked for."""
    train(tmp_path)
    assert (tmp_path / "log.jsonl").is_file() and not (tmp_path / "tensorboard").exists()


def test_tensorboard_has_the_scalars_of_log_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tmp_path, report_to="tensorboard")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    expected = {}
    for record in logged:
        for key, value in record.items():
            if key not in ("type", "step") and isinstance(value, (int, float)) and not isinstance(value, bool):
                expected.setdefault(f"{record['type']}/{key}", []).append((record["step"], value))
    assert {"train/loss", "train/lr", "eval/loss", "eval/accuracy"} <= set(expected)
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6), tag


def test_tensorboard_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(AlbertError, match=r"--report-to tensorboard needs the tensorboard package: pip install"):
        train(tmp_path, report_to="tensorboard")
