"""The default-resolution rules (albert/defaults.py), each against hand-computed values."""
from __future__ import annotations

import math

import pytest

from albert import defaults
from albert.tasks import TASK_NAMES, get_task


def test_interpolation_is_log_linear_between_anchors_and_constant_beyond():
    anchors = {64: 1e-2, 4096: 1e-3}
    assert defaults._interpolate(anchors, 16) == 1e-2 and defaults._interpolate(anchors, 10**6) == 1e-3
    assert defaults._interpolate(anchors, 512) == pytest.approx(1e-2 * 10 ** -0.5)  # halfway in log(batch)
    assert defaults._interpolate({128: 5e-4}, 3) == 5e-4


@pytest.mark.parametrize("optimizer, hidden, batch, lr", [
    ("lamb", 128, 64, 1e-2),       # tiny, the default batch: measured
    ("lamb", 32, 64, 1e-2),        # micro is a small model too
    ("lamb", 768, 4096, 1.76e-3),  # base at ALBERT's batch: the paper's rate
    ("adamw", 128, 64, 1e-3),
    ("adamw", 1024, 256, 1e-4),
])
def test_pretraining_lr_by_optimizer_size_and_batch(optimizer, hidden, batch, lr):
    got, why = defaults.pretrain_lr(optimizer, hidden, batch)
    assert got == pytest.approx(lr) and optimizer in why and f"global batch {batch}" in why


def test_pretraining_lr_follows_the_table_between_batch_sizes(monkeypatch):
    monkeypatch.setitem(defaults.PRETRAIN_LR, ("lamb", "small"), {64: 1e-2, 1024: 2.5e-3})
    assert defaults.pretrain_lr("lamb", 128, 256)[0] == pytest.approx(5e-3)  # halfway: sqrt(1e-2 * 2.5e-3)
    assert defaults.pretrain_lr("lamb", 128, 32)[0] == 1e-2 and defaults.pretrain_lr("lamb", 128, 8192)[0] == 2.5e-3


@pytest.mark.parametrize("pretrained, hidden, lr, reason", [
    (True, 768, 3e-5, "the task's"),          # albert-base-v2: the paper's table
    (True, 4096, 3e-5, "the task's"),
    (True, 128, 1e-3, "pretrained model of hidden size 128"),
    (False, 128, 1e-3, "random initialisation"),
    (False, 768, 1e-4, "random initialisation"),
    (False, 32, 1e-3, "random initialisation"),
])
def test_finetuning_lr_by_starting_point_and_size(pretrained, hidden, lr, reason):
    got, why = defaults.finetune_lr(3e-5, pretrained=pretrained, hidden_size=hidden)
    assert got == pytest.approx(lr) and reason in why


def test_a_random_initialisation_between_anchors_is_interpolated():
    got, _ = defaults.finetune_lr(1e-5, pretrained=False, hidden_size=256)
    t = math.log(256 / 128) / math.log(768 / 128)
    assert got == pytest.approx(1e-3 ** (1 - t) * 1e-4 ** t, rel=1e-2)


def test_warmup_is_the_papers_fraction_of_the_run():
    assert defaults.warmup_fraction({"warmup": 1256, "max_steps": 20935}) == 0.06  # SST-2
    assert defaults.warmup_fraction({"warmup": 200, "max_steps": 800}) == 0.25  # MRPC, RTE
    assert defaults.warmup_fraction({"warmup": 0.1, "epochs": 3}) == 0.1  # already a fraction (NER)
    for name in TASK_NAMES:  # every task's default is a fraction below 1, so it scales with any run
        assert 0 < defaults.warmup_fraction(get_task(name).defaults) < 1


def test_max_seq_length_is_cut_to_the_models_positions_with_a_note():
    assert defaults.max_seq_length(512, None) == (512, None)  # random init: positions follow the task
    assert defaults.max_seq_length(256, 512) == (256, None)
    seq, note = defaults.max_seq_length(512, 128)
    assert seq == 128 and "the task's default 512 cut to the model's max_position_embeddings" in note


@pytest.mark.parametrize("pretrained, hidden, low, high, reason", [
    (True, 768, 5e-6, 1e-4, "the ALBERT paper's range"),
    (True, 4096, 5e-6, 1e-4, "the ALBERT paper's range"),
    (True, 128, 1e-4, 3e-3, "around 0.001: a pretrained model of hidden size 128"),
    (False, 128, 1e-4, 3e-3, "around 0.001: random initialisation of hidden size 128"),
    (False, 768, 1e-5, 3e-4, "around 0.0001: random initialisation"),
])
def test_tuning_lr_range_by_starting_point_and_size(pretrained, hidden, low, high, reason):
    got_low, got_high, why = defaults.tune_lr_range(2e-5, pretrained=pretrained, hidden_size=hidden)
    assert (got_low, got_high) == (pytest.approx(low), pytest.approx(high)) and reason in why
    if not pretrained or hidden < defaults.PAPER_HIDDEN:  # the range holds finetune_lr's default
        centre, _ = defaults.finetune_lr(2e-5, pretrained=pretrained, hidden_size=hidden)
        assert got_low < centre < got_high


@pytest.mark.parametrize("global_batch, optimizer", [(64, "adamw"), (1023, "adamw"), (1024, "lamb"), (4096, "lamb")])
def test_pretraining_optimizer_by_global_batch(global_batch, optimizer):
    assert defaults.pretrain_optimizer(global_batch)[0] == optimizer


def test_pretraining_resolves_the_optimizer_then_its_rate(monkeypatch, caplog):
    from albert.pretrain import PretrainArgs, _default_lr, _default_optimizer

    args = PretrainArgs(corpus="wiki", batch_size=64)
    with caplog.at_level("INFO", logger="albert"):
        optimizer = _default_optimizer(args)
        lr = _default_lr(PretrainArgs(corpus="wiki", batch_size=64, optimizer=optimizer))
    assert (optimizer, lr) == ("adamw", 1e-3)
    assert "optimizer adamw (the default for global batch 64 < 1024" in caplog.text
    monkeypatch.setenv("WORLD_SIZE", "16")  # 16 processes x 64 rows: ALBERT's regime
    assert _default_optimizer(args) == "lamb"


# --- pretraining recipes by device (albert/defaults.py: pretrain_recipe) ------------------------

def test_a_cpu_gets_the_measured_cpu_recipe_as_a_one_hour_budget():
    recipe = defaults.pretrain_recipe(defaults.Device("cpu", cpu_cores=2))
    assert recipe.measured and recipe.why == "a CPU with 2 cores"
    assert recipe.values == dict(preset="tiny", vocab_size=8000, batch_size=16, mask_prob=0.4, warmup=0.025,
                                 optimizer="adamw", lr=1e-3, schedule="wsd", eval_every=1000, max_seq_length=128,
                                 time_budget="1h")
    # More cores change the steps the hour holds, not the recipe.
    assert defaults.pretrain_recipe(defaults.Device("cpu", cpu_cores=64)).values == recipe.values


@pytest.mark.parametrize("memory, preset, batch", [(139.8, "base", 512), (79.2, "base", 512), (40, "base", 256),
                                                   (24, "base", 128), (8, "small", 128)])
def test_a_gpu_gets_a_recipe_by_its_memory_said_to_be_unmeasured(memory, preset, batch):
    recipe = defaults.pretrain_recipe(defaults.Device("cuda", cpu_cores=16, gpu_memory_gib=memory, name="H100"))
    assert not recipe.measured and f"{memory:g} GiB" in recipe.why
    v = recipe.values
    assert (v["preset"], v["batch_size"]) == (preset, batch)
    # Short-budget choices (Cramming, MosaicBERT): high mask rate, AdamW with warmup, length 128, a budget.
    assert v["mask_prob"] >= 0.3 and v["optimizer"] == "adamw" and v["warmup"] > 0
    assert v["max_seq_length"] == 128 and v["time_budget"] == "1h"


def test_explicit_options_win_over_the_recipe_and_the_block_says_why():
    from albert.pretrain import PretrainArgs, apply_recipe

    cpu = defaults.Device("cpu", cpu_cores=2)
    args, lines = apply_recipe(PretrainArgs(corpus="wiki"), cpu)
    assert (args.preset, args.vocab_size, args.batch_size, args.mask_prob, args.optimizer, args.lr, args.warmup,
            args.eval_every, args.time_budget, args.max_steps) == ("tiny", 8000, 16, 0.4, "adamw", 1e-3, 0.025, 1000,
                                                                   "1h", None)
    assert lines[0] == "recipe: the CPU recipe (measured), for a CPU with 2 cores"
    assert args.schedule == "wsd" and "schedule wsd" in lines[1]
    assert apply_recipe(PretrainArgs(corpus="wiki", schedule="linear"), cpu)[0].schedule == "linear"
    args, lines = apply_recipe(PretrainArgs(corpus="wiki", preset="micro", mask_prob=0.15, max_steps=300), cpu)
    assert (args.preset, args.mask_prob, args.batch_size, args.max_steps, args.time_budget) == \
        ("micro", 0.15, 16, 300, None)  # a step count replaces the budget
    assert "given, so not the recipe's: --mask-prob 0.15, --preset micro" in lines[-1]
    # The recipe's lr is for its optimizer and batch: another batch gets the lr rule's.
    args, _ = apply_recipe(PretrainArgs(corpus="wiki", batch_size=2048), cpu)
    assert (args.optimizer, args.lr) == ("adamw", defaults.pretrain_lr("adamw", 128, 2048)[0])
    gpu = defaults.Device("cuda", cpu_cores=16, gpu_memory_gib=79.2, name="H100")
    args, lines = apply_recipe(PretrainArgs(corpus="wiki"), gpu)
    assert (args.preset, args.batch_size, args.lr, args.schedule) == ("base", 512, 5e-4, "wsd")
    assert "unmeasured" in lines[0] and "H100, 79.2 GiB" in lines[0]


def test_a_small_pretrained_model_fine_tunes_for_the_measured_steps():
    assert defaults.finetune_steps(pretrained=True, hidden_size=128) == (1000, "a pretrained model of hidden size 128")
    assert defaults.finetune_steps(pretrained=True, hidden_size=768)[0] is None  # the task's table
    assert defaults.finetune_steps(pretrained=False, hidden_size=128)[0] is None
