"""albert.metrics against scikit-learn, scipy, seqeval and the official SQuAD v1.1 rules."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from albert import metrics
from albert.errors import AlbertError

sklearn_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")
seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_labeling = pytest.importorskip("seqeval.metrics.sequence_labeling")

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


# ---------------------------------------------------------------------------------------------
# classification / regression vs scikit-learn and scipy


def _random_cases(n_classes: int, seeds=range(8)):
    for seed in seeds:
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 60))
        yield rng.integers(0, n_classes, n), rng.integers(0, n_classes, n)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_accuracy_matches_sklearn(n_classes):
    for preds, labels in _random_cases(n_classes):
        assert metrics.accuracy(preds, labels) == pytest.approx(sklearn_metrics.accuracy_score(labels, preds))


def test_accuracy_hand_case_and_bad_input():
    assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    with pytest.raises(ValueError):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError):
        metrics.accuracy([], [])
    with pytest.raises(ValueError):  # logits are not predictions
        metrics.accuracy(np.zeros((3, 2)), [0, 1, 0])


def test_f1_binary_matches_sklearn():
    cases = list(_random_cases(2)) + [
        ([0, 0, 0], [1, 0, 1]),  # no positive prediction: precision undefined
        ([1, 1, 0], [0, 0, 0]),  # no positive label: recall undefined
        ([0, 0, 0], [0, 0, 0]),  # neither
        ([1, 1, 1], [1, 1, 1]),
    ]
    for preds, labels in cases:
        want = sklearn_metrics.f1_score(labels, preds, zero_division=0)
        assert metrics.f1_binary(preds, labels) == pytest.approx(want)
    # tp=2, fp=1, fn=1 -> P=R=2/3 -> F1=2/3
    assert metrics.f1_binary([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_matthews_matches_sklearn(n_classes):
    for preds, labels in _random_cases(n_classes):
        want = sklearn_metrics.matthews_corrcoef(labels, preds)
        assert metrics.matthews_corrcoef(preds, labels) == pytest.approx(want, abs=1e-12)


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_matthews_undefined_is_zero_like_sklearn():
    for preds, labels in [([1, 1, 1, 1], [0, 1, 0, 1]), ([0, 0], [0, 0]), ([0, 1, 0], [1, 1, 1])]:
        assert metrics.matthews_corrcoef(preds, labels) == 0.0
        assert sklearn_metrics.matthews_corrcoef(labels, preds) == 0.0
    assert metrics.matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


def test_average_ranks_hand_computed():
    got = metrics._average_ranks(np.array([3.0, 1.0, 4.0, 1.0, 5.0, 3.0, 3.0]))
    # sorted: 1,1 -> ranks 1,2 -> 1.5; 3,3,3 -> ranks 3,4,5 -> 4; then 4 -> 6, 5 -> 7
    np.testing.assert_allclose(got, [4, 1.5, 6, 1.5, 7, 4, 4])


def test_pearson_spearman_matches_scipy_with_ties():
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(3, 80))
        labels = np.round(rng.uniform(0, 5, n) * 5) / 5  # STS-B style: many ties
        preds = np.round(labels + rng.normal(0, 1, n), 1)
        got = metrics.pearson_spearman(preds, labels)
        pearson = scipy_stats.pearsonr(preds, labels)[0]
        spearman = scipy_stats.spearmanr(preds, labels)[0]
        assert got["pearson"] == pytest.approx(pearson, abs=1e-10)
        assert got["spearmanr"] == pytest.approx(spearman, abs=1e-10)
        assert got["combined"] == pytest.approx((pearson + spearman) / 2, abs=1e-10)


def test_pearson_spearman_constant_prediction_is_zero_not_nan():
    got = metrics.pearson_spearman([2.5, 2.5, 2.5], [1.0, 2.0, 3.0])
    assert got == {"pearson": 0.0, "spearmanr": 0.0, "combined": 0.0}
    # A monotone but non-linear prediction: Spearman is exactly 1, Pearson below it.
    got = metrics.pearson_spearman([1.0, 2.0, 30.0, 400.0], [0.0, 1.0, 2.0, 3.0])
    assert got["spearmanr"] == pytest.approx(1.0) and got["pearson"] < 0.95


def test_cross_entropy_against_torch_and_scikit_learn():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(40, 5)) * 3, rng.integers(0, 5, size=40)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert metrics.cross_entropy(logits, labels) == pytest.approx(
        sklearn_metrics.log_loss(labels, probs, labels=range(5)), rel=1e-12)
    # Token level: ragged sentences, -100 labels skipped, as the token-classification loss does.
    ragged = [logits[:7], logits[7:20], logits[20:]]
    masked = labels.copy()
    masked[[0, 8, 9, 33]] = -100
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(masked), ignore_index=-100)
    got = metrics.cross_entropy(ragged, [masked[:7], masked[7:20], masked[20:]])
    assert got == pytest.approx(expected.item(), rel=1e-12)
    # Huge logits: the log-sum-exp stays finite (a naive softmax overflows).
    assert metrics.cross_entropy(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0])) == pytest.approx(500.0)
    assert metrics.cross_entropy(logits[:2], np.array([-100, -100])) == 0.0
    with pytest.raises(ValueError, match="3 rows of logits for 2 labels"):
        metrics.cross_entropy(logits[:3], labels[:2])
    assert metrics.mean_squared_error([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]) == pytest.approx(
        sklearn_metrics.mean_squared_error([1.0, 3.0, 2.0], [1.0, 2.0, 4.0]))


def test_glue_metrics_per_task_and_main_metric():
    preds, labels = [1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1]
    assert metrics.glue_metrics("cola", preds, labels) == {
        "mcc": pytest.approx(sklearn_metrics.matthews_corrcoef(labels, preds))}
    for task in ("sst2", "rte", "qnli", "SST-2"):
        assert metrics.glue_metrics(task, preds, labels) == {"accuracy": pytest.approx(4 / 6)}
    mrpc = metrics.glue_metrics("MRPC", preds, labels)
    f1 = sklearn_metrics.f1_score(labels, preds)
    assert mrpc == {"accuracy": pytest.approx(4 / 6), "f1": pytest.approx(f1),
                    "combined": pytest.approx((4 / 6 + f1) / 2)}
    stsb = metrics.glue_metrics("STS-B", [0.1, 2.0, 3.5, 4.0], [0.0, 2.5, 3.0, 5.0])
    assert set(stsb) == {"pearson", "spearmanr", "combined"}
    for task in set(metrics.GLUE_TASKS) - {"mnli"}:  # MNLI's is the accuracy of one dev set (GlueTask)
        x = [0.0, 1.0, 1.0, 0.0] if task == "stsb" else [0, 1, 1, 0]
        assert metrics.MAIN_METRIC[task] in metrics.glue_metrics(task, x, [0, 1, 0, 0])
    assert metrics.MAIN_METRIC["ner"] == "f1" and metrics.MAIN_METRIC["squad"] == "f1"
    qqp = metrics.glue_metrics("qqp", preds, labels)
    assert qqp == {"accuracy": sklearn_metrics.accuracy_score(labels, preds), "f1": pytest.approx(f1),
                   "combined": pytest.approx((4 / 6 + f1) / 2)}
    for task in ("mnli", "wnli"):
        assert metrics.glue_metrics(task, preds, labels) == {"accuracy": sklearn_metrics.accuracy_score(labels, preds)}
    assert metrics.MAIN_METRIC["mnli"] == "accuracy_matched" and metrics.MAIN_METRIC["qqp"] == "accuracy"
    with pytest.raises(AlbertError, match="unknown GLUE task 'ax'"):
        metrics.glue_metrics("ax", preds, labels)


# ---------------------------------------------------------------------------------------------
# NER vs seqeval (default, non-strict mode)


def _seqeval_scores(true_seqs, pred_seqs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on 0/0 and sets 0, which is what we compare
        report = seqeval_metrics.classification_report(true_seqs, pred_seqs, output_dict=True)
        micro = {
            "precision": seqeval_metrics.precision_score(true_seqs, pred_seqs),
            "recall": seqeval_metrics.recall_score(true_seqs, pred_seqs),
            "f1": seqeval_metrics.f1_score(true_seqs, pred_seqs),
        }
    per_type = {kind: {"precision": r["precision"], "recall": r["recall"], "f1": r["f1-score"],
                       "support": int(r["support"])}
                for kind, r in report.items() if not kind.endswith(" avg")}
    return {**micro, "per_type": per_type}


def _assert_same_as_seqeval(true_seqs, pred_seqs):
    got = metrics.ner_scores(true_seqs, pred_seqs)
    want = _seqeval_scores(true_seqs, pred_seqs)
    for key in ("precision", "recall", "f1"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["per_type"].keys() == want["per_type"].keys()
    for kind, scores in want["per_type"].items():
        assert got["per_type"][kind] == pytest.approx(scores, abs=1e-12), kind
    assert got["support"] == sum(s["support"] for s in want["per_type"].values())
    return got


ENTITY_CASES = {
    "entity at the end": ["O", "B-PER", "I-PER"],
    "I- without B-": ["O", "I-LOC", "I-LOC", "O", "I-PER"],
    "adjacent same type": ["B-PER", "B-PER", "I-PER", "O"],
    "type change inside a run": ["B-PER", "I-ORG", "I-ORG", "O"],
    "I- after I- of other type": ["I-PER", "I-ORG", "B-ORG"],
    "E/S tags": ["S-PER", "B-LOC", "E-LOC", "E-LOC", "O", "I-MISC", "S-MISC", "I-MISC"],
    "all O": ["O", "O"],
    "empty sentence": [],
    "hyphenated type": ["B-X-Y", "I-X-Y", "B-X"],
}


@pytest.mark.parametrize("name", list(ENTITY_CASES))
def test_get_entities_matches_seqeval(name):
    tags = ENTITY_CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = seqeval_labeling.get_entities(list(tags))
    assert metrics.get_entities(tags) == want


def test_get_entities_hand_cases():
    assert metrics.get_entities(["O", "B-PER", "I-PER"]) == [("PER", 1, 2)]
    assert metrics.get_entities(["I-LOC", "I-LOC", "O"]) == [("LOC", 0, 1)]
    assert metrics.get_entities(["B-PER", "B-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]
    assert metrics.get_entities(["B-PER", "I-ORG"]) == [("PER", 0, 0), ("ORG", 1, 1)]
    with pytest.raises(AlbertError, match="bad NER tag 'PER'"):
        metrics.get_entities(["O", "PER"])


NER_FIXTURE_TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC"],          # LOC at the end
    ["O", "B-ORG", "I-ORG", "I-ORG", "O"],
    ["B-PER", "B-PER", "O", "B-MISC", "I-MISC"],
    ["O", "O", "O"],                            # no gold entity here
]
NER_FIXTURE_PRED = [
    ["B-PER", "I-PER", "O", "I-LOC"],          # I- without B- still matches LOC at the end
    ["O", "B-ORG", "I-ORG", "O", "O"],          # boundary error
    ["B-PER", "I-PER", "O", "B-MISC", "I-ORG"],  # merged PERs; type change inside a run
    ["O", "B-LOC", "O"],                        # false positive
]


def test_ner_scores_fixture_matches_seqeval_and_hand_count():
    got = _assert_same_as_seqeval(NER_FIXTURE_TRUE, NER_FIXTURE_PRED)
    # gold: PER(0,0-1) LOC(0,3) ORG(1,1-3) PER(2,0) PER(2,1) MISC(2,3-4) = 6
    # pred: PER(0,0-1) LOC(0,3) ORG(1,1-2) PER(2,0-1) MISC(2,3) ORG(2,4) LOC(3,1) = 7; 2 correct
    assert got["precision"] == pytest.approx(2 / 7)
    assert got["recall"] == pytest.approx(2 / 6)
    assert got["per_type"]["LOC"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                      "support": 1}


def test_ner_scores_all_o_predictions():
    pred = [["O"] * len(s) for s in NER_FIXTURE_TRUE]
    got = _assert_same_as_seqeval(NER_FIXTURE_TRUE, pred)
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)


def test_ner_scores_no_gold_entities():
    true = [["O", "O", "O"], ["O"]]
    got = _assert_same_as_seqeval(true, [["B-PER", "O", "O"], ["O"]])
    assert got["recall"] == 0.0 and got["per_type"]["PER"]["support"] == 0
    got = _assert_same_as_seqeval(true, true)
    assert got == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "per_type": {}}


def test_ner_scores_entities_do_not_span_sentences():
    # An entity at the end of one sentence and an I- at the start of the next are two entities.
    got = _assert_same_as_seqeval([["O", "B-PER"], ["I-PER", "O"]], [["O", "B-PER"], ["I-PER", "O"]])
    assert got["support"] == 2 and got["f1"] == 1.0


def test_ner_scores_length_mismatch():
    with pytest.raises(ValueError):
        metrics.ner_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError):
        metrics.ner_scores([["O", "O"]], [["O"]])


TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "E-PER", "S-ORG"]


@st.composite
def _true_and_pred(draw):
    lengths = draw(st.lists(st.integers(0, 8), min_size=1, max_size=5))
    tag = st.sampled_from(TAGS)
    true = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    pred = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    return true, pred


@settings(max_examples=150, deadline=None)
@given(_true_and_pred())
def test_ner_scores_property_matches_seqeval(case):
    true, pred = case
    _assert_same_as_seqeval(true, pred)
    for seq in true:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert metrics.get_entities(seq) == seqeval_labeling.get_entities(list(seq))


def test_format_ner_report_lists_types_and_micro_average():
    scores = metrics.ner_scores(NER_FIXTURE_TRUE, NER_FIXTURE_PRED)
    report = metrics.format_ner_report(scores)
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1", "support"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line and "avg" not in line}
    assert set(rows) == {"LOC", "MISC", "ORG", "PER"}
    assert rows["PER"] == [f"{scores['per_type']['PER'][k]:.4f}" for k in ("precision", "recall", "f1")] + ["3"]
    micro = next(line for line in lines if line.startswith("micro avg")).split()[2:]
    assert micro == [f"{2 / 7:.4f}", f"{2 / 6:.4f}", f"{scores['f1']:.4f}", "6"]


# ---------------------------------------------------------------------------------------------
# SQuAD v1.1


@pytest.mark.parametrize("raw, want", [
    ("The Denver Broncos", "denver broncos"),
    ("  an  Apple,  a day!  ", "apple day"),
    ("theater", "theater"),               # articles only as whole words
    ("Thé end", "thé end"),               # non-ASCII letters kept
    ("U.S.-based", "usbased"),            # punctuation removed before splitting
    ("A", ""),
    ("1,000 (about)", "1000 about"),
    ("“quoted” — dash", "“quoted” — dash"),  # only ASCII punctuation is removed, as the script
    ("x—a—y", "x— —y"),                  # an article is replaced by a space, not deleted
])
def test_squad_normalize_official_rules(raw, want):
    assert metrics.squad_normalize(raw) == want


def test_squad_em_f1_hand_computed():
    answers = {"q1": ["the Denver Broncos"], "q2": ["Santa Clara, California", "Levi's Stadium"],
               "q3": ["red red blue"], "q4": ["the"]}
    preds = {
        "q1": "Denver Broncos.",                  # EM after normalisation
        "q2": "Levi's Stadium in Santa Clara",    # partial overlap with both golds: take the max
        "q3": "red blue blue",                    # Counter overlap: red 1 + blue 1 = 2
        "q4": "a",                                # both normalise to nothing: v1.1 gives F1 0, EM 1
    }
    # q2 vs "santa clara california": P=2/5, R=2/3 -> 0.5; vs "levis stadium": P=2/5, R=1 -> 4/7
    f1_q2 = max(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3), 2 * (2 / 5) * 1 / (2 / 5 + 1))
    f1_q3 = 2 / 3
    got = metrics.squad_em_f1(preds, answers)
    assert got["exact_match"] == pytest.approx(100 * 2 / 4)
    assert got["f1"] == pytest.approx(100 * (1 + f1_q2 + f1_q3 + 0) / 4)
    # A missing prediction scores 0 but still counts; an unknown id is ignored.
    got = metrics.squad_em_f1({"q1": "Denver Broncos", "zzz": "x"}, answers)
    assert got == {"exact_match": 25.0, "f1": 25.0}


def test_squad_em_f1_on_real_dev_questions():
    path = DATA / "squad" / "dev-v1.1.json"
    if not path.exists():
        pytest.skip(f"SQuAD dev set not found at {path} (set ALBERT_DATA)")
    dataset = json.loads(path.read_text(encoding="utf-8"))
    articles = dataset["data"][:2]
    qas = [qa for article in articles for p in article["paragraphs"] for qa in p["qas"]]
    first = {qa["id"]: qa["answers"][0]["text"] for qa in qas}
    assert metrics.squad_em_f1(first, articles) == {"exact_match": 100.0, "f1": 100.0}
    assert metrics.squad_em_f1(first, {"version": "1.1", "data": articles}) == {
        "exact_match": 100.0, "f1": 100.0}
    # Answering every question with its own context scores low but non-zero F1, and EM 0.
    contexts = {qa["id"]: p["context"] for article in articles for p in article["paragraphs"]
                for qa in p["qas"]}
    got = metrics.squad_em_f1(contexts, articles)
    assert got["exact_match"] == 0.0 and 0.0 < got["f1"] < 20.0


# ---------------------------------------------------------------------------------------------
# SQuAD v2.0 against the official evaluate-v2.0.py

SQUAD2 = Path(__file__).resolve().parent / "fixtures" / "squad2"
# The official script's output on tests/fixtures/squad2 (dev-v2.0.json, predictions.json,
# na_probs.json), printed by `python evaluate-v2.0.py dev-v2.0.json predictions.json
# [-n na_probs.json] [-t 0.6]` - the script of rajpurkar/SQuAD-explorer, as vendored at
# github.com/qwang70/bert (evaluate-v2.0.py, commit b3797fb7), run once on this machine. The
# predictions cover both kinds: right, partial and wrong answers, "" for answerable questions,
# answers for unanswerable ones, a gold answer that normalises to nothing ("a").
OFFICIAL_V2 = {
    "with na_probs": {"exact": 42.857142857142854, "f1": 57.573696145124714, "total": 14,
                      "HasAns_exact": 33.333333333333336, "HasAns_f1": 56.22574955908289, "HasAns_total": 9,
                      "NoAns_exact": 60.0, "NoAns_f1": 60.0, "NoAns_total": 5,
                      "best_exact": 57.142857142857146, "best_exact_thresh": -1.5,
                      "best_f1": 65.51020408163265, "best_f1_thresh": -1.0},
    "without na_probs": {"exact": 42.857142857142854, "f1": 57.573696145124714, "total": 14,
                         "HasAns_exact": 33.333333333333336, "HasAns_f1": 56.22574955908289, "HasAns_total": 9,
                         "NoAns_exact": 60.0, "NoAns_f1": 60.0, "NoAns_total": 5},
    "na_prob_thresh 0.6": {"exact": 42.857142857142854, "f1": 51.224489795918366, "total": 14,
                           "HasAns_exact": 33.333333333333336, "HasAns_f1": 46.349206349206355, "HasAns_total": 9,
                           "NoAns_exact": 60.0, "NoAns_f1": 60.0, "NoAns_total": 5,
                           "best_exact": 57.142857142857146, "best_exact_thresh": -1.5,
                           "best_f1": 65.51020408163265, "best_f1_thresh": -1.0},
}


@pytest.mark.parametrize("case", OFFICIAL_V2)
def test_squad_v2_equals_the_official_script_to_the_last_digit(case):
    from albert.data.squad import load_squad
    from albert.tasks.squad import gold_answers

    gold = gold_answers(load_squad(SQUAD2, version=2)["validation"])  # through our reader, as the task scores
    predictions = json.loads((SQUAD2 / "predictions.json").read_text())
    na_probs = json.loads((SQUAD2 / "na_probs.json").read_text())
    options = {"with na_probs": {"na_probs": na_probs}, "without na_probs": {},
               "na_prob_thresh 0.6": {"na_probs": na_probs, "na_prob_thresh": 0.6}}[case]
    got = metrics.squad_v2_metrics(predictions, gold, **options)
    # Same keys in the same order, and every value the same float (repr: to the last digit).
    assert list(got) == list(OFFICIAL_V2[case])
    assert {k: repr(v) for k, v in got.items()} == {k: repr(v) for k, v in OFFICIAL_V2[case].items()}


def test_squad_v2_hand_cases():
    gold = {"a": ["Denver Broncos"], "n": []}
    # "" is the right answer to an unanswerable question, and scores 0 on an answerable one.
    assert metrics.squad_v2_metrics({"a": "", "n": ""}, gold)["f1"] == 50.0
    got = metrics.squad_v2_metrics({"a": "the Broncos", "n": "x"}, gold, na_probs={"a": -1.0, "n": 2.0})
    assert got["HasAns_f1"] == pytest.approx(100 * 2 / 3) and got["NoAns_exact"] == 100.0  # na_prob 2 > 1: no answer
    assert got["best_f1_thresh"] == -1.0 and got["best_f1"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="no prediction"):
        metrics.squad_v2_metrics({}, gold)
