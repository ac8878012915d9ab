"""Checkpoints: the store (atomic, verified, rotated), the earlier-run rule, and faults injected
into real (tiny) fine-tuning runs: damaged or foreign checkpoints, a full disk. Every failure is
an AlbertError of one line naming the file; a run resumed after a fault logs the same per-step
losses as one that was never disturbed."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from albert.errors import AlbertError, TrainingWarning
from albert.train.checkpoints import CheckpointStore, refuse_earlier_run
from assertions import one_line_error
from synthetic_text import conll_text

STATE = {"model": {"w": torch.ones(3)}, "optimizer": {"state": {}}, "trainer": {"step": 0}}


def test_keep_last_rotates_and_leaves_other_writers_temporaries_alone(tmp_path):
    """A save removes nothing but its own rotated checkpoints: a `.step-N.tmp-*` may be another
    process's write in progress (the trainer sweeps killed saves' leftovers at its start, holding
    the directory's lock: tests/train/test_loop.py)."""
    store = CheckpointStore(tmp_path, keep_last=3, fingerprint="f", settings={"lr": 0.1})
    others = (".step-7.tmp-12345-abc", ".step-3.old-12345-abc")
    for other in others:
        (tmp_path / other).mkdir(parents=True)
        (tmp_path / other / "model.pt").write_bytes(b"half")
    for step in range(1, 7):
        store.save(step, STATE)
        assert [s for s, _ in store.steps()] == list(range(step, max(0, step - 3), -1))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, "step-4", "step-5", "step-6"])
    assert all((tmp_path / other / "model.pt").read_bytes() == b"half" for other in others)
    manifest = store.manifest(tmp_path / "step-6")
    assert manifest["step"] == 6 and manifest["config"] == "f" and manifest["settings"] == {"lr": 0.1}
    assert set(manifest["files"]) == {"model.pt", "optimizer.pt", "trainer.pt"}
    assert all(store.verify(p) is None for _, p in store.steps())


def test_saving_a_step_again_replaces_it(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=2)
    store.save(4, STATE)
    store.save(4, {**STATE, "model": {"w": torch.zeros(3)}})  # after a resume from step 4
    assert [s for s, _ in store.steps()] == [4] and sorted(p.name for p in tmp_path.iterdir()) == ["step-4"]
    assert torch.equal(store.load(tmp_path / "step-4", "model")["w"], torch.zeros(3))


def test_a_failed_save_leaves_nothing_and_names_the_intact_one(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path, keep_last=2)
    store.save(2, STATE)

    def full(obj, f, *args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(AlbertError) as e:
        store.save(4, STATE)
    one_line_error(e, f"{tmp_path / 'step-4'}: cannot write the checkpoint (No space left on device)",
                   f"the previous checkpoint {tmp_path / 'step-2'} is intact")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2"]


def test_the_earlier_run_rule(tmp_path):
    refuse_earlier_run(tmp_path / "new")  # nothing there: fine
    CheckpointStore(tmp_path / "checkpoints").save(5, STATE)
    with pytest.raises(AlbertError) as e:
        refuse_earlier_run(tmp_path)
    one_line_error(e, f"{tmp_path}: holds checkpoints of an earlier run (up to step 5)", "--resume")
    with pytest.raises(AlbertError) as e:
        refuse_earlier_run(tmp_path, resuming=True)
    one_line_error(e, "no intact checkpoint to resume from", "--overwrite")


def test_other_settings_are_named_on_resume(tmp_path):
    CheckpointStore(tmp_path, fingerprint="a", settings={"lr": 0.1, "seed": 1}).save(1, STATE)
    now = CheckpointStore(tmp_path, fingerprint="b", settings={"lr": 0.2, "seed": 1})
    with pytest.warns(TrainingWarning, match=r"step-1: saved with different training options than this "
                                             r"run's \(lr 0.1 -> 0.2\)"):
        now.warn_if_other_settings(tmp_path / "step-1")


# ----- faults injected into a real fine-tuning run

STEPS = 8


def ner_args(data_dir: Path, out: Path, **kw):
    from albert.finetune import FinetuneArgs

    base = dict(task="ner", preset="micro", data_dir=str(data_dir), vocab_size=200, max_seq_length=64, lr=1e-4,
                warmup=0, max_steps=STEPS, batch_size=4, save_every=2, log_every=1, eval_every=4, seed=3,
                progress=False, predict=False, output_dir=str(out))
    base.update(kw)
    return FinetuneArgs(**base)


def train_losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["type"] == "train"]
    assert len(steps) == len(set(steps)), f"duplicated steps in the log: {steps}"
    return {r["step"]: r["loss"] for r in records if r["type"] == "train"}


def assert_same_losses(out: Path, reference: dict[int, float]) -> None:
    got = train_losses(out)
    assert sorted(got) == sorted(reference)
    assert all(abs(got[k] - reference[k]) < 1e-6 for k in reference), (got, reference)


@pytest.fixture(scope="module")
def finetune_env(tmp_path_factory):
    """A synthetic NER data set, a private cache, and one complete reference run."""
    from albert.finetune import run

    root = tmp_path_factory.mktemp("ft")
    mp = pytest.MonkeyPatch()
    mp.setenv("ALBERT_CACHE", str(root / "cache"))
    data = root / "data"
    data.mkdir()
    (data / "train.txt").write_text(conll_text(120, 1))
    (data / "valid.txt").write_text(conll_text(30, 2))
    ref = root / "reference"
    run(ner_args(data, ref))
    yield data, ref, train_losses(ref)
    mp.undo()


def copy_run(ref: Path, dest: Path) -> Path:
    shutil.copytree(ref, dest)
    return dest


def checkpoint_names(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "no manifest", "foreign pickle"])
def test_damaged_newest_checkpoint_falls_back_and_resumes_exactly(finetune_env, tmp_path, damage):
    from albert.finetune import run

    data, ref, losses = finetune_env
    out = copy_run(ref, tmp_path / "run")
    assert checkpoint_names(out) == ["step-6", "step-8"]
    newest = out / "checkpoints" / "step-8"
    marker = tmp_path / "pwned"
    if damage == "truncated":
        f = newest / "model.pt"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "flipped byte":
        f = newest / "optimizer.pt"
        blob = bytearray(f.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        f.write_bytes(bytes(blob))
    elif damage == "no manifest":
        (newest / "manifest.json").unlink()
    else:  # a file that would run code when unpickled, with a manifest that vouches for it
        class Payload:
            def __reduce__(self):
                return (os.mkdir, (str(marker),))
        torch.save({"step": 8, "payload": Payload()}, newest / "trainer.pt")
        manifest = json.loads((newest / "manifest.json").read_text())
        manifest["files"]["trainer.pt"] = hashlib.sha256((newest / "trainer.pt").read_bytes()).hexdigest()
        (newest / "manifest.json").write_text(json.dumps(manifest))
    expected = {"truncated": "model.pt does not match its sha256", "flipped byte": "optimizer.pt does not match",
                "no manifest": "unreadable manifest.json", "foreign pickle": "trainer.pt is not a checkpoint file"}
    with pytest.warns(TrainingWarning, match=f"step-8: skipping checkpoint: {expected[damage]}"):
        results = run(ner_args(data, out), resume=True)
    assert not marker.exists()  # loading never executed the payload
    assert results["steps"] == STEPS
    assert_same_losses(out, losses)
    assert checkpoint_names(out) == ["step-6", "step-8"]
    assert CheckpointStore(out / "checkpoints", 2, "").verify(out / "checkpoints" / "step-8") is None


def test_every_checkpoint_damaged_refuses_instead_of_deleting(finetune_env, tmp_path):
    from albert.finetune import run

    data, ref, losses = finetune_env
    out = copy_run(ref, tmp_path / "run")
    for name in checkpoint_names(out):
        (out / "checkpoints" / name / "model.pt").write_bytes(b"")
    with pytest.warns(TrainingWarning), pytest.raises(AlbertError) as e:
        run(ner_args(data, out), resume=True)
    one_line_error(e, "no intact checkpoint to resume from", "--overwrite")
    assert checkpoint_names(out) == ["step-6", "step-8"]  # kept for the user to look at
    with pytest.warns(TrainingWarning, match="starting from scratch"):
        run(ner_args(data, out, overwrite=True), resume=True)
    assert_same_losses(out, losses)


def test_checkpoints_of_a_different_run_config(finetune_env, tmp_path):
    from albert.finetune import run

    data, ref, losses = finetune_env
    out = copy_run(ref, tmp_path / "run")
    config = (out / "config.json").read_bytes()
    # a fresh run must not take the directory over, nor replace the config.json describing it
    with pytest.raises(AlbertError) as e:
        run(ner_args(data, out, lr=2e-4))
    one_line_error(e, str(out), "holds checkpoints of an earlier run (up to step 8)", "--resume")
    assert (out / "config.json").read_bytes() == config
    # another batch size: a different data order, so no resume
    with pytest.raises(AlbertError) as e:
        run(ner_args(data, out, batch_size=8, max_steps=10), resume=True)
    one_line_error(e, "step-8", "global batch of 4 rows, this run uses 8")
    # another model shape: the weights cannot be loaded
    with pytest.raises(AlbertError) as e:
        run(ner_args(data, out, preset="tiny", max_steps=10), resume=True)
    one_line_error(e, "step-8", "does not fit this run's model", "another --output-dir")
    assert checkpoint_names(out) == ["step-6", "step-8"]
    # another learning rate: allowed, with a warning that names the difference
    with pytest.warns(TrainingWarning, match=r"different training options than this run's \(lr 0.0001 -> 0.0002\)"):
        results = run(ner_args(data, out, lr=2e-4, max_steps=10), resume=True)
    assert results["steps"] == 10
    got = train_losses(out)
    assert all(abs(got[k] - losses[k]) < 1e-6 for k in losses) and sorted(got) == list(range(1, 11))


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(finetune_env, tmp_path, monkeypatch):
    from albert.finetune import run

    data, ref, losses = finetune_env
    out = tmp_path / "run"
    real_save = torch.save
    calls = []

    def save_until_the_disk_fills(obj, f, *args, **kw):
        calls.append(f)
        if len(calls) == 5:  # the second file of the second checkpoint (step 4)
            Path(f).write_bytes(b"PK\x03\x04 partial")
            raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
                               "file data/0: file write failed\nframe #0: ...")
        return real_save(obj, f, *args, **kw)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    with pytest.raises(AlbertError) as e:
        run(ner_args(data, out))
    one_line_error(e, str(out / "checkpoints" / "step-4"), "cannot write the checkpoint",
                   "file write failed", "previous checkpoint", "step-2 is intact")
    monkeypatch.setattr(torch, "save", real_save)
    assert checkpoint_names(out) == ["step-2"]  # no temporary directory left, step-2 untouched
    assert CheckpointStore(out / "checkpoints", 2, "").verify(out / "checkpoints" / "step-2") is None
    assert not (out / "results.json").exists()
    run(ner_args(data, out), resume=True)
    assert_same_losses(out, losses)


def test_full_disk_writing_results_names_the_file(finetune_env, tmp_path, monkeypatch):
    from albert.finetune import run

    data, ref, losses = finetune_env
    out = tmp_path / "run"
    real_replace = os.replace

    def replace(src, dst, *args, **kw):
        if Path(dst).name == "results.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(AlbertError) as e:
        run(ner_args(data, out))
    one_line_error(e, f"{out / 'results.json'}: cannot write (No space left on device)")
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert CheckpointStore(out / "checkpoints", 2, "").verify(out / "checkpoints" / "step-8") is None
    results = run(ner_args(data, out), resume=True)  # nothing to train again: only the results
    assert results["steps"] == STEPS and json.loads((out / "results.json").read_text())["steps"] == STEPS
    assert_same_losses(out, losses)
