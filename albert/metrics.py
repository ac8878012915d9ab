"""Evaluation metrics for the fine-tuning tasks: GLUE, CoNLL-2003 NER, SQuAD v1.1 and v2.0.

Each metric is written out here (small, numpy only) so that the trainer and the tuner do not
depend on scikit-learn, scipy, seqeval or the SQuAD script at run time; the tests hold every
function to those references.

Conventions:
- Classification inputs are 1-D sequences of predicted and gold class ids (not logits).
- A score that is undefined (no positive predictions, a constant prediction vector, ...) is 0.0,
  as scikit-learn and seqeval return by default, so that checkpoint selection never sees NaN.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import AlbertError

# Task -> the metric key used to pick the best checkpoint (higher is better for all of them).
MAIN_METRIC: dict[str, str] = {
    "ner": "f1",
    "chunk": "f1",
    "pos": "accuracy",
    "squad": "f1",
    "cola": "mcc",
    "sst2": "accuracy",
    "rte": "accuracy",
    "qnli": "accuracy",
    "mrpc": "f1",
    "stsb": "combined",
    # MNLI: matched dev accuracy, the number the ALBERT paper reports (google-research/albert's MNLI
    # dev set is dev_matched.tsv; the mismatched one is a task of its own there).
    "mnli": "accuracy_matched",
    "qqp": "accuracy",
    "wnli": "accuracy",
    "squad2": "f1",
    "race": "accuracy",
}

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte", "qnli", "mnli", "qqp", "wnli")


# --------------------------------------------------------------------------------------------
# classification and regression


def _pair(preds: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(preds), np.asarray(labels)
    if p.ndim != 1 or y.ndim != 1:
        raise ValueError(f"expected 1-D predictions and labels, got shapes {p.shape} and {y.shape}")
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} labels")
    if len(p) == 0:
        raise ValueError("no predictions to score")
    return p, y


def accuracy(preds: Any, labels: Any) -> float:
    p, y = _pair(preds, labels)
    return float(np.mean(p == y))


def f1_binary(preds: Any, labels: Any) -> float:
    """F1 of the positive class (label 1), as MRPC reports it."""
    p, y = _pair(preds, labels)
    tp = int(np.sum((p == 1) & (y == 1)))
    fp = int(np.sum((p == 1) & (y != 1)))
    fn = int(np.sum((p != 1) & (y == 1)))
    # 2PR/(P+R) simplified; with no true positives F1 is 0 whether or not P or R is defined.
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_corrcoef(preds: Any, labels: Any) -> float:
    """Matthews correlation (multi-class form, which reduces to the usual binary one).

    0.0 when undefined, e.g. when every prediction is the same class.
    """
    p, y = _pair(preds, labels)
    classes, idx = np.unique(np.concatenate([y, p]), return_inverse=True)
    yi, pi = idx[: len(y)], idx[len(y):]
    confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(confusion, (yi, pi), 1)
    t_k = confusion.sum(axis=1)  # times each class truly occurred
    p_k = confusion.sum(axis=0)  # times each class was predicted
    c, s = np.trace(confusion), confusion.sum()
    cov_yp = c * s - t_k @ p_k
    cov_pp = s * s - p_k @ p_k
    cov_yy = s * s - t_k @ t_k
    if cov_pp * cov_yy == 0:
        return 0.0
    return float(cov_yp / np.sqrt(cov_pp * cov_yy))


def cross_entropy(logits: Any, labels: Any, ignore: int = -100) -> float:
    """Mean negative log-likelihood of `labels` under softmax(`logits`), as the training loss
    counts it: `logits` (N, C) or a sequence of (T_i, C) arrays, `labels` alike (N,) or (T_i,);
    labels equal to `ignore` are skipped. 0.0 when nothing is left to score."""
    x = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1]) for a in logits]) \
        if not isinstance(logits, np.ndarray) else np.asarray(logits, dtype=np.float64)
    y = np.concatenate([np.asarray(a).reshape(-1) for a in labels]) \
        if not isinstance(labels, np.ndarray) else np.asarray(labels).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} rows of logits for {len(y)} labels")
    keep = y != ignore
    if not keep.any():
        return 0.0
    x, y = x[keep], y[keep].astype(np.int64)
    top = x.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(x - top).sum(axis=1))
    return float(np.mean(log_norm - x[np.arange(len(y)), y]))


def mean_squared_error(preds: Any, labels: Any) -> float:
    p, y = _pair(preds, labels)
    return float(np.mean((p.astype(np.float64) - y.astype(np.float64)) ** 2))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Start index of each run of equal values, and the run every sorted element belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    run = np.cumsum(np.r_[True, sorted_x[1:] != sorted_x[:-1]]) - 1
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = mean_rank[run]
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    # Constant input has no correlation; report 0 rather than NaN (scipy returns NaN).
    return float(np.clip(a @ b / denom, -1.0, 1.0)) if denom > 0 else 0.0


def pearson_spearman(preds: Any, labels: Any) -> dict[str, float]:
    """STS-B scores: Pearson r, Spearman rho (average ranks for ties) and their mean."""
    p, y = _pair(preds, labels)
    p, y = p.astype(np.float64), y.astype(np.float64)
    pearson = _pearson(p, y)
    spearman = _pearson(_average_ranks(p), _average_ranks(y))
    return {"pearson": pearson, "spearmanr": spearman, "combined": (pearson + spearman) / 2}


def _glue_task(task: str) -> str:
    # Accept the directory spellings too ("SST-2", "STS-B").
    name = task.lower().replace("-", "").replace("_", "")
    if name not in GLUE_TASKS:
        raise AlbertError(f"unknown GLUE task {task!r}; expected one of {', '.join(GLUE_TASKS)}")
    return name


# The keys glue_metrics returns, per task (the others: accuracy alone).
GLUE_METRIC_NAMES: dict[str, tuple[str, ...]] = {"cola": ("mcc",), "stsb": ("pearson", "spearmanr", "combined"),
                                                 "mrpc": ("accuracy", "f1", "combined"), "qqp": ("accuracy", "f1", "combined")}


def glue_metric_names(task: str) -> tuple[str, ...]:
    """What glue_metrics(task, ...) returns, known before anything is scored."""
    return GLUE_METRIC_NAMES.get(_glue_task(task), ("accuracy",))


def glue_metrics(task: str, preds: Any, labels: Any) -> dict[str, float]:
    """The metrics GLUE reports for `task`; the key in MAIN_METRIC[task] is always present, except
    MNLI's, the accuracy of its matched dev set, which GlueTask adds for each of its dev sets."""
    name = _glue_task(task)
    if name == "cola":
        return {"mcc": matthews_corrcoef(preds, labels)}
    if name == "stsb":
        return pearson_spearman(preds, labels)
    if name in ("mrpc", "qqp"):
        acc, f1 = accuracy(preds, labels), f1_binary(preds, labels)
        return {"accuracy": acc, "f1": f1, "combined": (acc + f1) / 2}
    return {"accuracy": accuracy(preds, labels)}


# --------------------------------------------------------------------------------------------
# named-entity recognition (entity-level, seqeval default mode)


def _split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', '')."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not kind:
        raise AlbertError(f"bad NER tag {tag!r}: expected 'O' or B-/I-/E-/S- followed by a type")
    return prefix, kind


def _ends(prev: str, prev_kind: str, cur: str, kind: str) -> bool:
    """Does an entity end just before the current tag?"""
    if prev == "O":
        return False
    return (
        prev in ("E", "S")
        or cur in ("B", "S", "O")  # prev is B or I here
        or prev_kind != kind
    )


def _starts(prev: str, prev_kind: str, cur: str, kind: str) -> bool:
    """Does an entity start at the current tag? (I-/E- after O/E-/S- starts one, as conlleval.)"""
    if cur == "O":
        return False
    return cur in ("B", "S") or prev in ("O", "E", "S") or prev_kind != kind


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans `(type, start, end)` with `end` inclusive, by the conlleval/seqeval rules.

    Works for IOB2 and IOB1 input (an I-X that does not continue an X entity starts one) and
    tolerates E-/S- tags the way seqeval's default mode does.
    """
    entities: list[tuple[str, int, int]] = []
    prev, prev_kind, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):  # the trailing O closes an entity at the end
        cur, kind = _split_tag(tag)
        if _ends(prev, prev_kind, cur, kind):
            entities.append((prev_kind, begin, i - 1))
        if _starts(prev, prev_kind, cur, kind):
            begin = i
        prev, prev_kind = cur, kind
    return entities


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def ner_scores(true_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision/recall/F1 and per-type scores, as seqeval's default mode.

    An entity counts as correct only when its type, start and end all match a gold entity.
    Returns {"precision", "recall", "f1", "support", "per_type": {type: {"precision",
    "recall", "f1", "support"}}}; support is the number of gold entities.
    """
    if len(true_seqs) != len(pred_seqs):
        raise ValueError(f"{len(pred_seqs)} predicted sentences for {len(true_seqs)} gold ones")
    gold: set[tuple[int, str, int, int]] = set()
    pred: set[tuple[int, str, int, int]] = set()
    for n, (t, p) in enumerate(zip(true_seqs, pred_seqs)):
        if len(t) != len(p):
            raise ValueError(f"sentence {n}: {len(p)} predicted tags for {len(t)} gold tags")
        gold.update((n, *e) for e in get_entities(t))
        pred.update((n, *e) for e in get_entities(p))

    hits = gold & pred
    per_type: dict[str, dict[str, float]] = {}
    for kind in sorted({e[1] for e in gold | pred}):
        tp = sum(e[1] == kind for e in hits)
        n_pred = sum(e[1] == kind for e in pred)
        n_true = sum(e[1] == kind for e in gold)
        precision, recall, f1 = _prf(tp, n_pred, n_true)
        per_type[kind] = {"precision": precision, "recall": recall, "f1": f1, "support": n_true}
    precision, recall, f1 = _prf(len(hits), len(pred), len(gold))
    return {"precision": precision, "recall": recall, "f1": f1, "support": len(gold),
            "per_type": per_type}


def format_ner_report(scores: Mapping[str, Any]) -> str:
    """A per-type table of `ner_scores` output, with the micro average as the last row."""
    rows = [(kind, s) for kind, s in scores["per_type"].items()]
    support = scores.get("support", sum(s["support"] for _, s in rows))
    rows.append(("micro avg", {**scores, "support": support}))
    width = max([len("micro avg")] + [len(kind) for kind, _ in rows])
    lines = [f"{'':<{width}}  precision     recall         f1    support"]
    for kind, s in rows:
        if kind == "micro avg":
            lines.append("")
        lines.append(f"{kind:<{width}}  {s['precision']:>9.4f}  {s['recall']:>9.4f}  "
                     f"{s['f1']:>9.4f}  {int(s['support']):>9d}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# SQuAD v1.1 (the official evaluate-v1.1.py rules)

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(s: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _exact(prediction: str, gold: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(gold))


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens = squad_normalize(prediction).split()
    gold_tokens = squad_normalize(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    # The official v1.1 script scores 0 here even when both sides normalise to nothing.
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _gold_answers(dataset_or_answers: Any) -> dict[str, list[str]]:
    """{question id: gold answer texts} from a SQuAD json (whole file or its "data") or a mapping."""
    data = dataset_or_answers
    if isinstance(data, Mapping) and "data" in data:
        data = data["data"]
    if isinstance(data, Mapping):
        return {qid: [answers] if isinstance(answers, str) else list(answers)
                for qid, answers in data.items()}
    answers: dict[str, list[str]] = {}
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers[qa["id"]] = [a["text"] for a in qa["answers"]]
    return answers


def squad_em_f1(predictions: Mapping[str, str], dataset_or_answers: Any) -> dict[str, float]:
    """Exact match and F1 in percent, best over the gold answers of each question.

    `dataset_or_answers` is the parsed SQuAD v1.1 json (or its "data" list) or a mapping
    {question id: [gold answer, ...]}. As in the official script, a question without a
    prediction scores 0 and predictions for unknown ids are ignored.
    """
    gold = _gold_answers(dataset_or_answers)
    if not gold:
        raise ValueError("no questions to score")
    em = f1 = 0.0
    for qid, answers in gold.items():
        if qid not in predictions or not answers:
            continue
        prediction = predictions[qid]
        em += max(_exact(prediction, a) for a in answers)
        f1 += max(_token_f1(prediction, a) for a in answers)
    return {"exact_match": 100.0 * em / len(gold), "f1": 100.0 * f1 / len(gold)}


# --------------------------------------------------------------------------------------------
# SQuAD v2.0 (the official evaluate-v2.0.py rules, its sums in its order: equal to the last digit)


def _v2_exact(gold: str, prediction: str) -> int:
    return int(squad_normalize(gold) == squad_normalize(prediction))


def _v2_f1(gold: str, prediction: str) -> float:
    gold_tokens = squad_normalize(gold).split() if gold else []
    pred_tokens = squad_normalize(prediction).split() if prediction else []
    if not gold_tokens or not pred_tokens:
        return int(gold_tokens == pred_tokens)  # "no answer" scores 1 only against "no answer"
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0
    precision, recall = 1.0 * same / len(pred_tokens), 1.0 * same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _best_threshold(predictions: Mapping[str, str], scores: dict[str, float], na_probs: Mapping[str, float],
                    has_answer: dict[str, bool]) -> tuple[float, float]:
    """The score and the no-answer threshold that maximise it: questions in order of na_prob,
    each one answered (its score, or -1 for an unanswerable question answered) from there on."""
    current = best = sum(1 for q in has_answer if not has_answer[q])
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        current += scores[qid] if has_answer[qid] else (-1 if predictions[qid] else 0)
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


# What --metric may pick of squad_v2_metrics' keys (the *_total counts and thresholds are not scores).
SQUAD_V2_METRICS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1")


def squad_v2_metrics(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]],
                     na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0) -> dict[str, float]:
    """The official SQuAD v2.0 evaluation: exact and F1 (percent) over all questions, over the
    answerable (HasAns_*) and the unanswerable (NoAns_*) ones, with counts (*_total); with
    `na_probs` (question id -> no-answer score) also best_exact/best_f1 and their thresholds.

    `gold` maps each question id to its gold answer texts in file order ([] when unanswerable).
    As in the script, an empty prediction means "no answer", a question whose na_prob exceeds
    `na_prob_thresh` counts as answered "no answer", and a question without a prediction is
    left out of the scores (the script prints a warning for it).
    """
    if not gold:
        raise ValueError("no questions to score")
    has_answer = {qid: bool(answers) for qid, answers in gold.items()}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        texts = [a for a in answers if squad_normalize(a)] or [""]
        exact_raw[qid] = max(_v2_exact(a, predictions[qid]) for a in texts)
        f1_raw[qid] = max(_v2_f1(a, predictions[qid]) for a in texts)
    if not exact_raw:
        raise ValueError("no prediction for any question")
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        return {qid: float(not has_answer[qid]) if probs[qid] > na_prob_thresh else s for qid, s in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)
    out: dict[str, float] = {"exact": 100.0 * sum(exact.values()) / len(exact),
                             "f1": 100.0 * sum(f1.values()) / len(f1), "total": len(exact)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid, has in has_answer.items() if has == wanted]
        if qids:
            out[f"{prefix}_exact"] = 100.0 * sum(exact[q] for q in qids) / len(qids)
            out[f"{prefix}_f1"] = 100.0 * sum(f1[q] for q in qids) / len(qids)
            out[f"{prefix}_total"] = len(qids)
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = _best_threshold(predictions, exact_raw, na_probs, has_answer)
        out["best_f1"], out["best_f1_thresh"] = _best_threshold(predictions, f1_raw, na_probs, has_answer)
    return out
