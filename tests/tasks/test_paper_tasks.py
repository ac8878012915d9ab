"""The tasks of issue 33 (MNLI, QQP, WNLI, SQuAD 2.0, RACE) end to end: finetune.py writes each
task's metrics, train.py reproduces a run, tune.py sweeps one, and the loss falls from random
weights on learnable data. The data is made up (tests/synthetic_text.py) in the official layouts:
each label follows from which slice of the word list the words come from, SQuAD 2.0's questions
ask for the word after a word that is (answerable) or is not (unanswerable) in the context."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from sklearn.metrics import accuracy_score

from albert.config import preset
from albert.finetune import FinetuneArgs, run
from albert.model import AlbertForMultipleChoice, AlbertForSequenceClassification
from albert.tasks import get_task
from albert.tasks.squad2 import Squad2Task
from albert.tokenizer import train_tokenizer
from synthetic_text import mnli_tsv, prose, qqp_tsv, race_articles, squad_json, wnli_tsv

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TASKS = ("mnli", "qqp", "wnli", "squad2", "race")
# Where each task's files go under $ALBERT_DATA (the directory --data-dir names).
DATA_DIRS = {"mnli": "glue/MNLI", "qqp": "glue/QQP", "wnli": "glue/WNLI", "squad2": "squad2", "race": "RACE"}
# The metrics each task's results.json must hold.
METRICS = {"mnli": {"accuracy_matched", "accuracy_mismatched", "accuracy", "loss"},
           "qqp": {"accuracy", "f1", "combined", "loss"},
           "wnli": {"accuracy", "loss"},
           "squad2": {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
                      "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"},
           "race": {"accuracy", "accuracy_middle", "accuracy_high", "loss"}}


def write_data(root: Path, train: int, dev: int) -> None:
    """Every task's files, as the official distributions lay them out, under `root`."""
    files = {"glue/MNLI/train.tsv": mnli_tsv(train, 1), "glue/MNLI/dev_matched.tsv": mnli_tsv(dev, 2, dev=True),
             "glue/MNLI/dev_mismatched.tsv": mnli_tsv(dev, 3, dev=True),
             "glue/QQP/train.tsv": qqp_tsv(train, 1), "glue/QQP/dev.tsv": qqp_tsv(dev, 2),
             "glue/WNLI/train.tsv": wnli_tsv(train, 1), "glue/WNLI/dev.tsv": wnli_tsv(dev, 2),
             "squad2/train-v2.0.json": squad_json(max(1, train // 8), 1, version=2),
             "squad2/dev-v2.0.json": squad_json(max(1, dev // 8), 2, version=2)}
    files.update({f"RACE/train/{k}": v for k, v in race_articles(max(2, train // 2), 1).items()})
    files.update({f"RACE/dev/{k}": v for k, v in race_articles(max(2, dev // 2), 2).items()})
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper_tasks")
    write_data(root / "small", train=24, dev=8)
    write_data(root / "learnable", train=320, dev=16)
    train_tokenizer(prose(200, 0).split("\n\n"), root / "spm", vocab_size=300)
    return root


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "ALBERT_CACHE": str(data / "cache"), "PYTHONPATH": f"{REPO}:{REPO / 'tests'}",
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.parametrize("task", TASKS)
def test_finetune_py_writes_the_tasks_metrics(data, tmp_path, task):
    """The CLI end to end on each task's official layout; for MNLI also train.py, which must
    reproduce the run (same metrics, same weights)."""
    out = tmp_path / "run"
    command = [sys.executable, "finetune.py", "--task", task, "--preset", "micro", "--tokenizer", data / "spm",
               "--data-dir", data / "small" / DATA_DIRS[task], "--max-steps", "4", "--eval-every", "2",
               "--batch-size", "4", "--max-seq-length", "64", "--device", "cpu", "--no-progress",
               "--output-dir", out]
    done = subprocess.run(command, cwd=REPO, env=_env(data), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 4 and results["main_metric"] == get_task(task).main_metric
    assert set(results["best"]) == METRICS[task] and set(results["final"]) == METRICS[task]
    prediction_files = {p.name for p in out.glob("predictions*")}
    assert prediction_files == ({"predictions.json", "predictions_na_probs.json"} if task == "squad2"
                                else {"predictions.tsv"})
    if task != "mnli":
        return
    again = subprocess.run([sys.executable, "train.py", out / "config.json", "--output-dir", tmp_path / "again"],
                           cwd=REPO, env=_env(data), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((tmp_path / "again" / "results.json").read_text())
    assert {k: rerun[k] for k in ("best", "final", "best_step")} == {k: results[k] for k in ("best", "final", "best_step")}
    first, second = (torch.load(d / "checkpoints" / "step-4" / "model.pt") for d in (out, tmp_path / "again"))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_tune_py_sweeps_a_new_task(data, tmp_path):
    """Two RACE trials (the multiple-choice head) through tune.py: the sweep ranks them by RACE's
    accuracy and its best trial is one of them."""
    sweep = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "tune.py", "--task", "race", "--preset", "micro", "--tokenizer",
                           data / "spm", "--data-dir", data / "small" / "RACE", "--max-seq-length", "64",
                           "--budget", "2", "--max-resource", "2", "--eta", "2", "--scheduler", "random",
                           "--workers", "1", "--seed", "3", "--device", "cpu", "--no-progress", "--output-dir", sweep],
                          cwd=REPO, env=_env(data), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    best = json.loads((sweep / "best" / "best.json").read_text())
    trials = (sweep / "trials.csv").read_text().splitlines()
    assert len(trials) == 3, trials  # a header and two trials
    assert best["resource"] == 2 and 0.0 <= best["metric"] <= 1.0
    trial_results = [json.loads(p.read_text()) for p in sweep.glob("trials/*/results.json")]
    assert best["metric"] in [r["final"]["accuracy"] for r in trial_results]


@pytest.mark.slow  # five short trainings: together too long for the default suite (docs/paper-tasks.md)
@pytest.mark.parametrize("task", TASKS)
def test_the_loss_falls_from_random_weights(data, tmp_path, monkeypatch, task):
    """40 steps of the micro preset at lr 3e-3 (RACE, four sequences a row: shorter ones, smaller
    batches); the mean training loss of the last 8 steps at least 0.05 below that of the first 8,
    and for the classification tasks below chance (ln of the number of classes or options)."""
    monkeypatch.setenv("ALBERT_CACHE", str(data / "cache"))
    out = tmp_path / "run"
    shape = {"max_seq_length": 32, "batch_size": 8} if task == "race" else {"max_seq_length": 64, "batch_size": 16}
    run(FinetuneArgs(task=task, preset="micro", tokenizer=str(data / "spm"), output_dir=str(out),
                     data_dir=str(data / "learnable" / DATA_DIRS[task]), **shape, lr=3e-3, max_steps=40,
                     eval_every=0, log_every=1, seed=0, device="cpu", progress=False, predict=False))
    losses = [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["type"] == "train"]
    assert len(losses) == 40
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < first - 0.05, (task, first, last)
    chance = {"mnli": np.log(3), "qqp": np.log(2), "wnli": np.log(2), "race": np.log(4)}
    assert task not in chance or last < chance[task] - 0.03, (task, last, chance[task])


# ----- the pieces: the multiple-choice head and batches, RACE's and SQuAD 2.0's evaluation


def test_multiple_choice_scores_each_option_with_the_sequence_classifier():
    torch.manual_seed(0)
    config = preset("micro", vocab_size=50, num_labels=1)
    choice = AlbertForMultipleChoice(config).eval()
    single = AlbertForSequenceClassification(config).eval()
    single.load_state_dict(choice.state_dict())
    ids = torch.randint(5, 50, (3, 4, 10))
    labels = torch.tensor([0, 3, 1])
    out = choice(ids, token_type_ids=torch.zeros_like(ids), labels=labels)
    per_option = single(ids.view(12, 10), token_type_ids=torch.zeros(12, 10, dtype=torch.long)).logits.view(3, 4)
    assert out.logits.shape == (3, 4) and torch.allclose(out.logits, per_option, atol=1e-6)
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(per_option, labels), atol=1e-6)


@pytest.fixture(scope="module")
def race_fixture(data):
    task = get_task("race")
    raw = task.load(str(FIXTURES / "RACE"))
    texts = prose(100, 0).split("\n\n") + [t for split in raw.values() for t in task.texts(split)]
    tok = train_tokenizer(texts, data / "race_spm", vocab_size=300)
    return task, raw, task.featurize(raw, tok, 64), tok


def test_race_features_and_batches(race_fixture):
    task, raw, features, tok = race_fixture
    row = features["validation"][0]  # "Lily's new pet is _ ." with the option in the blank
    assert len(row["input_ids"]) == 4 and row["labels"] == 2
    assert row["input_ids"][2][-1] == row["input_ids"][0][-1] and row["input_ids"][2] != row["input_ids"][0]
    # [CLS] article, cut to fit [SEP] question with the option in its blank [SEP] (lower-cased, as ALBERT's)
    assert tok.decode(row["input_ids"][2]).startswith("[CLS] lily got a new pet")
    assert tok.decode(row["input_ids"][2]).endswith("[SEP] lily's new pet is a cat .[SEP]")
    assert all(len(x) <= 64 for x in row["input_ids"]) and row["length"] == max(len(x) for x in row["input_ids"])
    batch = task.collate([features["validation"][i] for i in range(3)])
    assert batch["input_ids"].shape[:2] == (3, 4) and batch["input_ids"].shape[2] % 8 == 0
    assert batch["labels"].tolist() == [2, 0, 1]


def test_race_accuracy_by_level_against_scikit_learn(race_fixture):
    task, raw, features, tok = race_fixture
    torch.manual_seed(1)
    model = AlbertForMultipleChoice(preset("micro", vocab_size=tok.vocab_size, num_labels=1))
    scores, preds = task.evaluate(model, features, raw)
    labels, levels = np.asarray(raw["validation"]["label"]), np.asarray(raw["validation"]["level"])
    assert scores["accuracy"] == accuracy_score(labels, preds)
    for level in ("middle", "high"):
        assert scores[f"accuracy_{level}"] == accuracy_score(labels[levels == level], preds[levels == level])


def test_squad2_answers_no_answer_when_the_null_score_wins():
    context = "alpha beta gamma delta"
    raw = Dataset.from_list([{"id": "q", "title": "t", "context": context, "question": "?",
                              "answers": {"text": [], "answer_start": []}}])
    # One window: [CLS] ? [SEP] alpha beta gamma delta [SEP]; the best span is "gamma" (score 4 + 4).
    features = Dataset.from_list([{"example_index": 0, "word_ids": [-1, -1, -1, 0, 1, 2, 3, -1],
                                   "max_context": [0, 0, 0, 1, 1, 1, 1, 0]}])
    start = np.array([0.0, 0, 0, 1, 0, 4, 0, 0])
    for null, threshold, answer in ((3.0, 0.0, "gamma"), (5.0, 0.0, ""), (5.0, 2.5, "gamma")):
        end = start.copy()
        start[0] = end[0] = null  # null score 2 * null against the span's 8
        got = Squad2Task(null_score_diff_threshold=threshold).decode(features, raw, [start], [end])
        assert got.answers == {"q": answer} and got.na_probs == {"q": 2 * null - 8.0}
