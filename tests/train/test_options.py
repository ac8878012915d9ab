"""The one set of training options: its checks, what the checkpoint fingerprint covers, and its
round trip through the command line and config.json."""
from __future__ import annotations

import dataclasses
import json

import pytest

from albert.errors import AlbertError
from albert.finetune import FinetuneArgs
from albert.pretrain import PretrainArgs
from albert.runconfig import UsageParser, add_arguments, apply_overrides, build_args, save_run_config
from albert.train.options import NOT_TRAJECTORY, TrainingOptions

RESOLVED = dict(output_dir="out", lr=1e-3, batch_size=4, warmup=0.1, weight_decay=0.0, epochs=1.0, metric="loss",
                greater_is_better=False)


@pytest.mark.parametrize("change, message", [
    ({"lr": 0.0}, "--lr must be positive, got 0.0"),
    ({"batch_size": 0}, "--batch-size must be >= 1, got 0"),
    ({"grad_accum": 0}, "--grad-accum must be >= 1"),
    ({"epochs": 0.0}, "--epochs must be positive"),
    ({"warmup": -1.0}, "--warmup must be >= 0"),
    ({"schedule": "cosine"}, "--schedule must be one of linear, polynomial, constant, wsd, got 'cosine'"),
    ({"optimizer": "sgd"}, "--optimizer must be one of adamw, lamb, got 'sgd'"),
    ({"precision": "fp8"}, "--precision must be one of auto, fp32, bf16, fp16, got 'fp8'"),
    ({"log_every": 0}, "--log-every must be >= 1"),
    ({"save_every": -1}, "--eval-every and --save-every must be >= 0"),
    ({"keep_last": 0}, "--keep-last must be >= 1"),
    ({"patience": 0}, "--patience must be >= 1"),
    ({"num_workers": -1}, "--num-workers must be >= 0"),
    ({"max_bad_steps": 0}, "--max-bad-steps must be >= 1"),
    ({"schedule_steps": 0}, "--schedule-steps must be >= 1"),
    # NaN/inf in any float field, as a caller in Python (the tuner's objective) could pass them
    ({"lr": float("inf")}, "--lr must be a finite number, got inf"),
    ({"max_grad_norm": float("nan")}, "--max-grad-norm must be a finite number, got nan"),
    ({"betas": (0.9, float("inf"))}, r"--betas must be a finite number, got \(0.9, inf\)"),
    ({"epochs": float("inf")}, "--epochs must be a finite number, got inf"),
    ({"max_steps": 5}, r"give --max-steps or --epochs, not both \(got --max-steps 5 and --epochs 1.0\)"),
    ({"power": -1.0}, "--power must be positive, got -1.0"),
    ({"betas": (0.9, 1.0)}, r"--betas must both be in \[0, 1\), got \[0.9, 1.0\]"),
    ({"eps": 0.0}, "--eps must be positive, got 0.0"),
    ({"layer_lr_decay": 1.5}, r"--layer-lr-decay must be in \(0, 1\], got 1.5"),
    ({"seed": -1}, r"--seed must be in \[0, 2\^32\), got -1"),
    ({"seed": 2**32}, r"--seed must be in \[0, 2\^32\), got 4294967296"),
    ({"report_to": "wandb"}, "--report-to must be one of none, tensorboard, got 'wandb'"),
    ({"compile_mode": "fast"}, "--compile-mode must be one of default, reduce-overhead, max-autotune, got 'fast'"),
    ({"num_workers": -1}, "--num-workers must be >= 0, got -1"),
])
def test_bad_values_are_one_line_errors(change, message):
    with pytest.raises(AlbertError, match=f"^{message}"):
        TrainingOptions(**{**RESOLVED, **change}).validate()


def test_a_subclass_float_is_checked_for_finite_values_too():
    with pytest.raises(AlbertError, match="^--short-seq-prob must be a finite number, got nan"):
        PretrainArgs(output_dir="out", short_seq_prob=float("nan")).validate()
    with pytest.raises(AlbertError, match="^--dropout must be a finite number, got -inf"):
        FinetuneArgs(task="ner", output_dir="out", dropout=-float("inf")).validate()


def test_the_run_length_given_replaces_the_other(monkeypatch):
    """max_steps or epochs, never both: the one given on the command line (or by --set) replaces
    the other's default or saved value; given both, the options refuse them."""
    from albert.runconfig import parse_recipe_args

    monkeypatch.setattr("sys.argv", ["pretrain.py", "--output-dir", "o", "--epochs", "2"])
    args, _ = parse_recipe_args("pretrain.py", "", PretrainArgs, {})
    assert (args.max_steps, args.epochs) == (None, 2.0)
    args.validate()
    monkeypatch.setattr("sys.argv", ["pretrain.py", "--output-dir", "o"])
    args = parse_recipe_args("pretrain.py", "", PretrainArgs, {})[0]
    assert (args.max_steps, args.epochs) == (None, None)  # the device's recipe gives a time budget
    saved = {"task": "ner", "output_dir": "o", "epochs": 3.0, "max_steps": None}
    assert apply_overrides(FinetuneArgs, saved, ["max_steps=100"]) == {**saved, "max_steps": 100, "epochs": None}
    assert apply_overrides(FinetuneArgs, {**saved, "epochs": None, "max_steps": 7}, ["epochs=2"])["max_steps"] is None
    assert apply_overrides(FinetuneArgs, saved, ["lr=1e-4"])["epochs"] == 3.0
    both = apply_overrides(FinetuneArgs, saved, ["max_steps=100", "epochs=1"])
    with pytest.raises(AlbertError, match="give --max-steps or --epochs, not both"):
        FinetuneArgs(**both).validate()


def test_the_trainer_needs_the_recipe_defaults_filled_in():
    TrainingOptions(**RESOLVED).validate_resolved()
    TrainingOptions(**{**RESOLVED, "output_dir": ""}).validate()  # a recipe picks a default directory
    with pytest.raises(AlbertError, match="^--output-dir is required"):
        TrainingOptions(**{**RESOLVED, "output_dir": ""}).validate_resolved()
    TrainingOptions(output_dir="out").validate()  # None is fine before a recipe resolves it
    with pytest.raises(AlbertError, match="training options not set: lr, batch_size, warmup, weight_decay, "
                                          "metric, greater_is_better"):
        TrainingOptions(output_dir="out").validate_resolved()
    without_metric = TrainingOptions(**{**RESOLVED, "metric": None, "greater_is_better": None})
    without_metric.validate_resolved(evaluating=False)  # a run without evaluation needs no metric
    with pytest.raises(AlbertError, match="training options not set: metric, greater_is_better"):
        without_metric.validate_resolved()
    with pytest.raises(AlbertError, match="give max_steps or epochs"):
        TrainingOptions(**{**RESOLVED, "epochs": None}).validate_resolved()
    TrainingOptions(**{**RESOLVED, "schedule": None}).validate()  # the pretraining recipe picks it
    with pytest.raises(AlbertError, match="training options not set: schedule$"):
        TrainingOptions(**{**RESOLVED, "schedule": None}).validate_resolved()


def test_the_fingerprint_covers_the_trajectory_only():
    base = FinetuneArgs(task="ner", preset="micro", **RESOLVED)
    same = dataclasses.replace(base, output_dir="elsewhere", log_every=1, device="cpu", num_workers=2, compile=True,
                               compile_mode="max-autotune", keep_last=5, overwrite=True, max_steps=99, progress=False,
                               eval_batch_size=7, max_eval_samples=10)  # the recipe's own options neither
    assert same.fingerprint() == base.fingerprint()
    for change in ({"lr": 2e-3}, {"seed": 1}, {"betas": (0.9, 0.98)}, {"grad_accum": 2}, {"precision": "bf16"}):
        assert dataclasses.replace(base, **change).fingerprint() != base.fingerprint(), change
    settings = base.trajectory_settings()
    # The wsd schedule's decay fraction shapes nothing under another schedule: a run saved before it
    # existed (linear) keeps its fingerprint and resumes.
    assert set(settings) == {f.name for f in dataclasses.fields(TrainingOptions)} - set(NOT_TRAJECTORY) - {
        "decay_fraction"}
    assert dataclasses.replace(base, decay_fraction=0.5).fingerprint() == base.fingerprint()
    wsd = dataclasses.replace(base, schedule="wsd")
    assert wsd.trajectory_settings()["decay_fraction"] == 0.2
    assert dataclasses.replace(wsd, decay_fraction=0.5).fingerprint() != wsd.fingerprint() != base.fingerprint()


@pytest.mark.parametrize("cls, required", [(FinetuneArgs, {"task": "ner"}), (PretrainArgs, {})])
def test_every_option_is_on_the_command_line_and_survives_config_json(tmp_path, cls, required):
    parser = UsageParser.make("x", "")
    add_arguments(parser, cls)
    flags = {a.dest for a in parser._actions} - {"help"}
    assert flags == {f.name for f in dataclasses.fields(cls)} - {"extra"}
    ns = vars(parser.parse_args(["--output-dir", "o", "--betas", "[0.9, 0.98]", "--greater-is-better", "true",
                                 "--metric", "f1", "--no-group-by-length", *sum(([f"--{k}", v] for k, v in
                                                                                  required.items()), [])]))
    args = cls(**ns)
    assert args.betas == (0.9, 0.98) and args.greater_is_better is True and args.group_by_length is False
    save_run_config(tmp_path / "config.json", "x", args)
    values = json.loads((tmp_path / "config.json").read_text())["args"]
    again = build_args(cls, apply_overrides(cls, values, ["betas=[0.8, 0.9]"]), "config.json")
    assert again.betas == (0.8, 0.9) and again.fingerprint() != args.fingerprint()
    assert dataclasses.replace(again, betas=(0.9, 0.98)).fingerprint() == args.fingerprint()
