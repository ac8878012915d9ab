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
