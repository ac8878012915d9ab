"""Made-up text for tests that need data of a known shape: CoNLL files and prose."""
from __future__ import annotations

import random

SYLLABLES = ["ka", "lo", "mi", "ten", "ra", "su", "ven", "dor", "pa", "li", "gro", "bel", "nu", "sa", "tor"]
WORDS = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "s", "n")})[:400]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def conll_text(n_sentences: int, seed: int) -> str:
    """A 4-column CoNLL file body; every tag appears at the start of some sentence."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_sentences):
        for j in range(rng.randint(3, 12)):
            tag = TAGS[(i + j) % len(TAGS)] if j == 0 else rng.choice(TAGS)
            lines.append(f"{rng.choice(WORDS)} NN B-NP {tag}")
        lines.append("")
    return "\n".join(lines) + "\n"


def prose(n_docs: int, seed: int, sentences: tuple[int, int] = (2, 6)) -> str:
    """Documents of capitalised sentences, a blank line between documents."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
                 for _ in range(rng.randint(*sentences))]
        docs.append(" ".join(sents))
    return "\n\n".join(docs) + "\n"


def sentence(rng: random.Random, low: int = 3, high: int = 10) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def sst2_tsv(n: int, seed: int) -> str:
    """SST-2's train.tsv/dev.tsv: label 1 when most words come from the first half of WORDS."""
    rng = random.Random(seed)
    rows = ["sentence\tlabel"]
    for _ in range(n):
        words = sentence(rng).split()
        rows.append(f"{' '.join(words)}\t{int(sum(WORDS.index(w) < len(WORDS) // 2 for w in words) * 2 > len(words))}")
    return "\n".join(rows) + "\n"


def stsb_tsv(n: int, seed: int) -> str:
    """STS-B's ten columns: the score is 5 x the share of the first sentence's words in the second."""
    rng = random.Random(seed)
    rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for i in range(n):
        a = sentence(rng).split()
        b = [w if rng.random() < 0.5 else rng.choice(WORDS) for w in a]
        score = 5.0 * sum(x == y for x, y in zip(a, b)) / len(a)
        rows.append(f"{i}\tmain\tx\t2012\t{i}\tnone\tnone\t{' '.join(a)}\t{' '.join(b)}\t{score:.3f}")
    return "\n".join(rows) + "\n"


def squad_json(n_articles: int, seed: int, version: int = 1) -> str:
    """SQuAD v1.1: each question asks for the word after a word of the context. Version 2 (v2.0):
    four questions a paragraph, every other one unanswerable: "what follows X?" with X absent from
    the context (is_impossible, its plausible answer the word after the word it replaced)."""
    import json

    rng = random.Random(seed)
    data = []
    for a in range(n_articles):
        paragraphs = []
        for p in range(2):
            words = sentence(rng, 20, 40).split()
            context = " ".join(words)
            qas = []
            for q in range(3 if version == 1 else 4):
                k = rng.randrange(len(words) - 1)
                start = len(" ".join(words[:k + 1])) + 1
                answer = {"text": words[k + 1], "answer_start": start}
                qa = {"id": f"{a}-{p}-{q}", "question": f"what follows {words[k]}?", "answers": [answer]}
                if version == 2:
                    qa["is_impossible"] = bool(q % 2)
                    if q % 2:
                        missing = next(w for w in WORDS if w not in words)
                        qa.update(question=f"what follows {missing}?", answers=[], plausible_answers=[answer])
                qas.append(qa)
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    return json.dumps({"version": "1.1" if version == 1 else "v2.0", "data": data})


# --- the tasks of issue 33, in their official layouts, each with a rule a model can learn from
# the words alone: which slice of a few signal words most words come from decides the label.

def _leaning(rng: random.Random, part: int, parts: int, low: int = 4, high: int = 9) -> str:
    """A sentence whose words come mostly (9 in 10) from part `part` of `parts` slices of
    SIGNAL_WORDS, the rest from all of WORDS."""
    size = len(SIGNAL_WORDS) // parts
    return " ".join(rng.choice(SIGNAL_WORDS[part * size:(part + 1) * size]) if rng.random() < 0.9
                    else rng.choice(WORDS) for _ in range(rng.randint(low, high)))


# Few (a micro model learns them in tens of steps) and spread over WORDS (words of different
# slices share few pieces).
SIGNAL_WORDS = WORDS[::len(WORDS) // 6][:6]


MNLI_LABELS = ("entailment", "neutral", "contradiction")
MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]


def mnli_tsv(n: int, seed: int, dev: bool = False) -> str:
    """MNLI's train.tsv (12 columns) or dev_*.tsv (16: five annotator labels); the hypothesis's
    words come mostly from the third of the signal words that names the label."""
    rng = random.Random(seed)
    rows = ["\t".join(MNLI_HEAD + (["label1", "label2", "label3", "label4", "label5"] if dev else ["label1"])
                      + ["gold_label"])]
    for i in range(n):
        label = rng.randrange(3)
        s1, s2 = sentence(rng), _leaning(rng, label, 3)
        parse = [f"( {s1} )", f"( {s2} )", f"(ROOT (S {s1}))", f"(ROOT (S {s2}))"]
        annotators = [MNLI_LABELS[label]] * (5 if dev else 1)
        rows.append("\t".join([str(i), str(1000 + i), f"{1000 + i}e", "fiction", *parse, s1, s2, *annotators,
                               MNLI_LABELS[label]]))
    return "\n".join(rows) + "\n"


def _binary_pairs(n: int, seed: int, header: str, row) -> str:
    """A header and `n` lines row(i, first, second, label): label 1 when the second text's words
    lean to the signal words' first half."""
    rng = random.Random(seed)
    rows = [header]
    for i in range(n):
        label = rng.randrange(2)
        rows.append(row(i, sentence(rng), _leaning(rng, 1 - label, 2), label))
    return "\n".join(rows) + "\n"


def qqp_tsv(n: int, seed: int) -> str:
    """QQP's six columns; is_duplicate 1 when question2 leans to the signal words' first half."""
    return _binary_pairs(n, seed, "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                         lambda i, a, b, y: f"{i}\t{2 * i + 1}\t{2 * i + 2}\t{a}?\t{b}?\t{y}")


def wnli_tsv(n: int, seed: int) -> str:
    """WNLI's four columns; label 1 (entailment) when sentence2 leans to the signal words' first half."""
    return _binary_pairs(n, seed, "index\tsentence1\tsentence2\tlabel", lambda i, a, b, y: f"{i}\t{a}.\t{b}.\t{y}")


def race_articles(n_articles: int, seed: int) -> dict[str, str]:
    """RACE's per-article JSON files {"middle/1.txt": ..., "high/1.txt": ...}; the right option's
    words lean to the signal words' first half, the three others' to the second."""
    import json

    rng = random.Random(seed)
    files = {}
    for a in range(n_articles):
        level = ("middle", "high")[a % 2]
        questions, options, answers = [], [], []
        for q in range(rng.randint(2, 3)):
            right = rng.randrange(4)
            questions.append(f"{sentence(rng, 3, 6)} _ ." if q % 2 else f"{sentence(rng, 3, 6)}?")
            options.append([_leaning(rng, 0 if o == right else 1, 2, 1, 3) for o in range(4)])
            answers.append("ABCD"[right])
        doc = {"answers": answers, "options": options, "questions": questions,
               "article": " ".join(sentence(rng, 8, 15) + "." for _ in range(rng.randint(3, 6))),
               "id": f"{level}{a // 2 + 1}.txt"}
        files[f"{level}/{a // 2 + 1}.txt"] = json.dumps(doc)
    return files
