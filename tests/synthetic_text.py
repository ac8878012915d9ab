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
