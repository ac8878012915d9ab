"""ALBERT's n-gram whole-word masking, a whole batch at a time.

Each row's mask is a pure function of (seed, epoch, row index): its random numbers come from
its own generator, `np.random.default_rng([seed, epoch, index])`, drawn in a fixed order. So a
resumed run masks exactly as an uninterrupted one, however rows are batched, split over
processes or DataLoader workers. The choice itself (which spans, in which order) is computed
for all rows of a batch together with array operations; only the generator calls are per row.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import AlbertError
from ...tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID, Tokenizer

SPECIAL_IDS = (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)
IGNORE_INDEX = -100


@dataclass
class MaskedTokens:
    """One row's masking."""

    input_ids: np.ndarray  # with [MASK] / random / kept tokens at the chosen positions
    labels: np.ndarray  # original ids at the chosen positions, IGNORE_INDEX elsewhere
    spans: list[tuple[int, int, int]]  # (first token, end token, number of words), in the order chosen


@dataclass
class MaskedRows:
    """A batch's masking, rows laid end to end: row r is `input_ids[offsets[r]:offsets[r + 1]]`."""

    input_ids: np.ndarray  # (total tokens,) masked ids
    offsets: np.ndarray  # (rows + 1,) where each row starts, then the total
    positions: np.ndarray  # (chosen,) indices into input_ids, ascending (so grouped by row)
    labels: np.ndarray  # (chosen,) the original ids there
    spans: np.ndarray  # (spans, 4): row, first token, end token (row-relative), words; in the order chosen

    def row(self, r: int) -> MaskedTokens:
        start, end = self.offsets[r], self.offsets[r + 1]
        labels = np.full(end - start, IGNORE_INDEX, dtype=np.int64)
        here = (self.positions >= start) & (self.positions < end)
        labels[self.positions[here] - start] = self.labels[here]
        spans = [(int(a), int(b), int(n)) for _, a, b, n in self.spans[self.spans[:, 0] == r]]
        return MaskedTokens(self.input_ids[start:end].copy(), labels, spans)


class NgramMasker:
    """ALBERT's n-gram whole-word masking.

    Candidates are whole words: a piece marked as a word start plus the pieces after it up to the
    next word start; special tokens are never masked and no span crosses one. Spans of n words
    start at random words, n in 1..max_ngram with p(n) ∝ 1/n (over the lengths that fit before
    the next special token); the budget is min(max_predictions, max(1, round(len * mask_prob)))
    tokens; a span that would exceed it tries shorter n, and a span that overlaps an earlier one
    is skipped. Each chosen token becomes [MASK] 80% of the time, a random non-special id 10%,
    and stays itself 10%. At most `max_predictions` tokens of a row are ever chosen.

    Per row, in this order: a permutation of its words (the order they are tried in), one
    uniform number per word (its n), then one per chosen token (mask / random / keep), then the
    random ids.
    """

    def __init__(self, word_start: np.ndarray, *, seed: int = 0, mask_prob: float = 0.15,
                 max_predictions: int = 20, max_ngram: int = 3, special_ids: Sequence[int] = SPECIAL_IDS):
        if not 0.0 < mask_prob < 1.0:
            raise AlbertError(f"mask_prob={mask_prob} must be in (0, 1)")
        if max_predictions < 1 or max_ngram < 1:
            raise AlbertError(f"max_predictions={max_predictions} and max_ngram={max_ngram} must be at least 1")
        self.word_start = np.asarray(word_start, dtype=bool)
        self.vocab_size = len(self.word_start)
        self.is_special = np.zeros(self.vocab_size, dtype=bool)
        self.is_special[list(special_ids)] = True
        self.replacement_ids = np.flatnonzero(~self.is_special)
        self.seed = seed
        self.mask_prob = mask_prob
        self.max_predictions = max_predictions
        self.max_ngram = max_ngram
        p = 1.0 / np.arange(1, max_ngram + 1)
        # _cdf[c - 1, :c]: cumulative p(n) over n <= c, for a span that can hold at most c words;
        # +inf past c, so that counting entries <= a uniform draw gives n - 1.
        self._cdf = np.full((max_ngram, max_ngram), np.inf)
        for c in range(1, max_ngram + 1):
            self._cdf[c - 1, :c] = np.cumsum(p[:c]) / p[:c].sum()

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, **kwargs) -> "NgramMasker":
        return cls(tokenizer.word_start_mask(), **kwargs)

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, index])

    def budget(self, length: int | np.ndarray) -> int | np.ndarray:
        """Tokens to mask in a row of `length` tokens (Python's and numpy's round agree: half to even)."""
        if isinstance(length, np.ndarray):
            return np.minimum(self.max_predictions, np.maximum(1, np.round(length * self.mask_prob).astype(np.int64)))
        return min(self.max_predictions, max(1, int(round(length * self.mask_prob))))

    def words(self, ids: np.ndarray, offsets: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first token, end token, run) per word of rows laid end to end (`offsets` as in
        `MaskedRows`; one row when None). Words of one run have no special token or row start
        between them, so a span of words never crosses either."""
        special = self.is_special[ids]
        firsts = np.zeros(1, dtype=np.int64) if offsets is None else offsets[:-1]
        row_start = np.zeros(len(ids), dtype=bool)
        row_start[firsts[firsts < len(ids)]] = True
        after_special = np.concatenate(([True], special[:-1])) | row_start
        begins_word = ~special & (self.word_start[ids] | after_special)
        boundary = special | row_start
        starts = np.flatnonzero(begins_word)
        edges = np.flatnonzero(begins_word | boundary)
        ends = np.append(edges, len(ids))[np.searchsorted(edges, starts, side="right")]
        runs = np.cumsum(boundary)[starts]
        return starts, ends, runs

    # --- one row, and a batch ---------------------------------------------------------------
    def mask(self, input_ids: Sequence[int], rng: np.random.Generator) -> MaskedTokens:
        """Mask one row with the given generator."""
        return self._mask([input_ids], [rng]).row(0)

    def mask_rows(self, rows: Sequence[Sequence[int]], epoch: int, indices: Sequence[int]) -> MaskedRows:
        """Mask a batch; row i's generator is seeded by (seed, epoch, indices[i])."""
        if len(rows) != len(indices):
            raise AlbertError(f"{len(rows)} rows but {len(indices)} indices")
        return self._mask(rows, [self.rng(epoch, int(i)) for i in indices])

    def __call__(self, row: Mapping[str, Any], epoch: int, index: int) -> dict[str, Any]:
        """One dataset row, masked as (seed, epoch, index) says, with full-length labels."""
        m = self.mask(row["input_ids"], self.rng(epoch, index))
        return {"input_ids": m.input_ids.tolist(), "token_type_ids": list(row["token_type_ids"]),
                "labels": m.labels.tolist(), "sentence_order_label": int(row["sentence_order_label"])}

    def _mask(self, rows: Sequence[Sequence[int]], rngs: Sequence[np.random.Generator]) -> MaskedRows:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(offsets[-1]))
        starts, ends, runs = self.words(ids, offsets)
        n_words = np.bincount(np.searchsorted(offsets, starts, side="right") - 1, minlength=len(rows))
        first_word = np.concatenate(([0], np.cumsum(n_words)))

        # The per-row draws that come before the choice: the order words are tried in, and a
        # uniform number per word that picks its n.
        widest = int(n_words.max(initial=0))
        order = np.zeros((len(rows), widest), dtype=np.int64)
        draws = np.empty(int(first_word[-1]))
        for r, (rng, n, first) in enumerate(zip(rngs, n_words.tolist(), first_word.tolist())):
            order[r, :n] = first + rng.permutation(n)
            draws[first:first + n] = rng.random(n)
        # Longest span from each word: up to max_ngram words, not past the end of its run.
        cap = np.minimum(np.searchsorted(runs, runs, side="right") - np.arange(len(starts)), self.max_ngram)
        want = np.minimum((self._cdf[cap - 1] <= draws[:, None]).sum(1) + 1, cap)
        spans = self._choose(starts, ends, order, n_words, want, self.budget(lengths))
        # Spans never overlap: +1 at each span's first token, -1 at its end, summed, marks them.
        edges = np.bincount(spans[:, 0], minlength=len(ids) + 1) - np.bincount(spans[:, 1], minlength=len(ids) + 1)
        chosen = np.cumsum(edges)[:-1] > 0

        positions = np.flatnonzero(chosen)
        labels = ids[positions]
        out = ids.copy()
        # The per-row draws that come after: what each chosen token becomes.
        per_row = np.bincount(np.searchsorted(offsets, positions, side="right") - 1, minlength=len(rows))
        bounds = np.concatenate(([0], np.cumsum(per_row)))
        action = np.empty(len(positions))
        swaps = []
        for rng, first, n in zip(rngs, bounds.tolist(), per_row.tolist()):
            a = action[first:first + n] = rng.random(n)
            swaps.append(rng.integers(len(self.replacement_ids), size=np.count_nonzero(a >= 0.9)))
        out[positions[action < 0.8]] = MASK_ID
        if swaps:
            out[positions[action >= 0.9]] = self.replacement_ids[np.concatenate(swaps)]
        span_rows = np.searchsorted(offsets, spans[:, 0], side="right") - 1
        spans = np.stack([span_rows, spans[:, 0] - offsets[span_rows], spans[:, 1] - offsets[span_rows],
                          spans[:, 2]], axis=1) if len(spans) else np.zeros((0, 4), dtype=np.int64)
        return MaskedRows(out, offsets, positions, labels, spans)

    def _choose(self, starts: np.ndarray, ends: np.ndarray, order: np.ndarray, n_words: np.ndarray,
                want: np.ndarray, budget: np.ndarray) -> np.ndarray:
        """The greedy choice, one rank of every row's order at a time: at rank k each row that has
        budget left tries its k-th word with its n, shortened until the span fits the budget, and
        skipped if it overlaps an earlier span. Rows never share words, so they cannot interfere.
        Returns the spans (first token, end token, words); each row's in the order it chose them."""
        covered = np.zeros(len(starts), dtype=bool)
        masked = np.zeros(len(budget), dtype=np.int64)
        ngram = np.arange(1, self.max_ngram + 1)
        found: list[np.ndarray] = []
        for k in range(order.shape[1]):
            live = np.flatnonzero((k < n_words) & (masked < budget))
            if not len(live):
                break
            w = order[live, k]
            last = np.minimum(w[:, None] + ngram - 1, len(starts) - 1)  # the span's last word, per n
            cost = ends[last] - starts[w][:, None]
            n = ((ngram <= want[w][:, None]) & (masked[live, None] + cost <= budget[live, None])).sum(1)
            inside = ngram <= n[:, None]
            ok = (n > 0) & ~(covered[last] & inside).any(1)
            covered[last[ok][inside[ok]]] = True
            w, n, live = w[ok], n[ok], live[ok]
            end = ends[w + n - 1]
            masked[live] += end - starts[w]
            found.append(np.stack([starts[w], end, n], axis=1))
        return np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)
