"""Pretraining learns: on a corpus whose sentence order is visible, both heads get it.

Every document has two sentences, the first beginning with "alpha" and the second with "omega",
so segment A of an unswapped pair starts with "alpha" and of a swapped one with "omega". A model
whose sentence-order labels, pooler and SOP head are wired up right learns that in a hundred or
so tiny-model steps; one whose labels were flipped or detached from the swap stays at chance.
(The micro preset and LAMB both sit on a plateau for hundreds of steps before they find the cue,
which is why the test uses the tiny preset with AdamW.)
"""
from __future__ import annotations

import json
import math
import random

import pytest

from albert.pretrain import PretrainArgs, run
from synthetic_text import WORDS


def ordered_corpus(n_docs: int, seed: int) -> str:
    rng = random.Random(seed)

    def sentence(first: str) -> str:
        return " ".join([first, *(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))]).capitalize() + "."

    return "\n\n".join(f"{sentence('alpha')} {sentence('omega')}" for _ in range(n_docs)) + "\n"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The run's directory, its results and its held-out evaluations, in step order."""
    tmp = tmp_path_factory.mktemp("pretrain")
    corpus = tmp / "ordered.txt"
    corpus.write_text(ordered_corpus(3000, seed=3))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALBERT_CACHE", str(tmp / "cache"))
        # Most initial draws find the cue within 200 steps (seeds 5, 6, 7 here); some sit on the
        # plateau longer (seed 4 since the backbone is drawn once instead of twice).
        args = PretrainArgs(corpus=str(corpus), output_dir=str(tmp / "run"), preset="tiny", vocab_size=200,
                            optimizer="adamw", lr=1e-3, max_seq_length=64, batch_size=32, max_steps=200,
                            eval_every=100, eval_examples=128, log_every=25, num_proc=1, seed=5, progress=False,
                            mask_prob=0.15)  # ALBERT's rate, where the seeds above were found
        results = run(args)
    out = tmp / "run"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return out, results, [r for r in records if r.get("type") == "eval"]


def test_sop_learns_visible_sentence_order(pretrained):
    _, results, evals = pretrained
    assert [e["step"] for e in evals] == [100, 200]
    final = results["final"]
    # Chance is 0.5 for balanced accuracy whatever the held-out label shares.
    assert final["sop_balanced_accuracy"] > 0.8, evals
    assert final["sop_accuracy"] > max(0.85, final["sop_majority"]), evals
    assert evals[-1]["sop_loss"] < 0.45, evals


def test_mlm_loss_falls_below_uniform(pretrained):
    out, results, evals = pretrained
    vocab = json.loads((out / "model_config.json").read_text())["vocab_size"]
    # A freshly initialised model predicts ~uniformly: ln(vocab). Words are drawn from 400
    # made-up ones, so a model that learnt the unigram distribution is well below that.
    assert evals[0]["mlm_loss"] < math.log(vocab) - 0.5, evals
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"], evals
    assert results["final"]["mlm_accuracy"] > 0.05


def test_max_predictions_default_follows_the_mask_rate():
    from albert.pretrain import predictions

    assert predictions(0.15, PretrainArgs(max_seq_length=128)) == 20  # ALBERT's pair
    assert predictions(0.4, PretrainArgs(max_seq_length=128)) == 52
    assert predictions(0.15, PretrainArgs(max_seq_length=512)) == 77
    assert predictions(0.4, PretrainArgs(max_seq_length=128, max_predictions=7)) == 7


def test_held_out_masks_do_not_follow_the_training_mask_rate(tmp_path, monkeypatch):
    """Runs that train at different --mask-prob are scored on the same held-out masks: with a
    learning rate too small to move the weights, their held-out MLM losses agree."""
    corpus = tmp_path / "ordered.txt"
    corpus.write_text(ordered_corpus(300, seed=3))
    monkeypatch.setenv("ALBERT_CACHE", str(tmp_path / "cache"))
    losses = {}
    for rate in (0.15, 0.4):
        args = PretrainArgs(corpus=str(corpus), output_dir=str(tmp_path / f"run-{rate}"), preset="micro",
                            vocab_size=200, optimizer="adamw", lr=1e-12, max_seq_length=64, batch_size=8,
                            max_steps=1, eval_every=1, eval_examples=64, num_proc=1, seed=5, progress=False,
                            mask_prob=rate)
        losses[rate] = run(args)["final"]["mlm_loss"]
    assert losses[0.15] == pytest.approx(losses[0.4], rel=1e-6)


def test_a_second_run_reuses_the_vocabulary_trained_by_the_first(tmp_path, monkeypatch):
    import albert.pretrain as pretrain

    corpus = tmp_path / "ordered.txt"
    corpus.write_text(ordered_corpus(300, seed=3))
    monkeypatch.setenv("ALBERT_CACHE", str(tmp_path / "cache"))

    def args(name, vocab_size=200):
        return PretrainArgs(corpus=str(corpus), output_dir=str(tmp_path / name), preset="micro",
                            vocab_size=vocab_size, max_seq_length=64, batch_size=8, max_steps=1, eval_every=0,
                            num_proc=1, seed=5, progress=False)

    run(args("first"))
    trained = pretrain.train_tokenizer
    monkeypatch.setattr(pretrain, "train_tokenizer", lambda *a, **k: pytest.fail("trained the vocabulary again"))
    run(args("second"))
    first, second = (tmp_path / n / "tokenizer" / "spiece.model" for n in ("first", "second"))
    assert first.read_bytes() == second.read_bytes()
    # Another vocabulary size is another vocabulary: trained, not taken from the cache.
    monkeypatch.setattr(pretrain, "train_tokenizer", trained)
    run(args("third", vocab_size=150))
    assert (tmp_path / "third" / "tokenizer" / "spiece.model").read_bytes() != first.read_bytes()
