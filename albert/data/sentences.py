"""Sentences and headings in plain text: where a paragraph's sentences end (an abbreviation's
"." does not end one) and which short lines are WikiExtractor section headings."""
from __future__ import annotations

import re
from typing import Sequence

HEADING_MAX_WORDS = 8

# Words that end in "." without ending a sentence (compared lower-cased, without the final ".").
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st mt ft rev hon gen col lt sgt capt maj cmdr adm gov sen rep pres
c b d fl
vs etc al approx ca cf co corp inc ltd bros dept est fig figs no nos vol vols pp ed eds op
jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
""".split())
# Dotted forms ("e.g.", "i.e.", "U.S.", "a.m.", "Ph.D.") and single initials ("J.").
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.){2,}")
_INITIAL = re.compile(r"[A-Z]\.")
# A candidate boundary: end punctuation, optional closing quotes/brackets, then white space.
_BOUNDARY = re.compile(r"[.!?]+['\"\u201d\u2019)\]]*\s+")
_OPENERS = "\"'\u201c\u2018([\u00bf\u00a1"


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences.

    A sentence ends at ".", "!" or "?" (possibly followed by closing quotes or brackets) when
    white space and then an upper-case letter, a digit or an opening quote follow. A "." does not
    end a sentence after a known abbreviation ("Dr.", "e.g.", "No."), a dotted acronym ("U.S.")
    or a single initial ("J. R. R. Tolkien"). This errs on the side of fewer splits: a missed
    boundary only makes a segment longer, a false one cuts a sentence in two.
    """
    text = paragraph.strip()
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if end >= len(text):
            break
        nxt = text[end]
        if not (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS):
            continue
        punct_end = m.start() + len(m.group().rstrip())
        if text[m.start()] == "." and _is_abbreviation(text, m.start()):
            continue
        sentence = text[start:punct_end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the "." at `dot` closes an abbreviation rather than a sentence."""
    word = re.split(r"[\s(\[\"\u201c']", text[: dot + 1])[-1]
    return (word[:-1].lower() in ABBREVIATIONS
            or _INITIAL.fullmatch(word) is not None
            or _DOTTED.fullmatch(word) is not None)


def is_heading(line: str) -> bool:
    """A WikiExtractor section heading: a short line (<= 8 words) of one sentence ending in ".".

    Short one-sentence paragraphs look the same and are dropped too; in wiki-valid.txt.gz 23% of
    the body lines match, and a sample of them reads as headings."""
    return (line.endswith(".") and len(line.split()) <= HEADING_MAX_WORDS
            and _BOUNDARY.search(line[:-1]) is None)


def document_sentences(paragraphs: Sequence[str]) -> list[str]:
    return [s for p in paragraphs for s in split_sentences(p)]
