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


def squad_json(n_articles: int, seed: int) -> str:
    """SQuAD v1.1: each question asks for the word after a word of the context."""
    import json

    rng = random.Random(seed)
    data = []
    for a in range(n_articles):
        paragraphs = []
        for p in range(2):
            words = sentence(rng, 20, 40).split()
            context = " ".join(words)
            qas = []
            for q in range(3):
                k = rng.randrange(len(words) - 1)
                start = len(" ".join(words[:k + 1])) + 1
                qas.append({"id": f"{a}-{p}-{q}", "question": f"what follows {words[k]}?",
                            "answers": [{"text": words[k + 1], "answer_start": start}]})
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    return json.dumps({"version": "1.1", "data": data})
