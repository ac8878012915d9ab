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
