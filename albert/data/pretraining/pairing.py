"""Sentence-order-prediction pairs from a corpus, built once and cached on disk.

Examples follow google-research/albert `create_pretraining_data.py`:
- per document, a target length: `max_seq_length - 3`, or with probability `short_seq_prob` a
  random one in [2, max_seq_length - 3] (short inputs like those of fine-tuning);
- sentences are gathered into a chunk until it reaches the target (or the document ends);
  segment A is the first `a_end` sentences (a_end uniform in [1, len(chunk) - 1]), B the rest;
  with probability 0.5 A and B are swapped: sentence_order_label 1 (swapped), else 0;
- a chunk of one sentence (the document's last, or one longer than the target) cannot be split:
  as in the reference, A is that sentence and B is text from another document, from a random
  sentence on, with label 1. The reference draws that document from the whole corpus held in
  memory; we stream, so it is drawn from the last RECENT_DOCUMENTS documents of the same file
  (the first document of a file has none and skips such a chunk);
- the pair is cut to `max_seq_length - 3` tokens, one token at a time from the longer segment,
  from its front or back at random; then `[CLS] A [SEP] B [SEP]` with token types 0...0 1...1.

The reference masks once when it writes the examples (dupe_factor copies with different masks);
here the examples are stored unmasked, and `masking.NgramMasker` masks each one afresh every epoch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Sequence

import datasets
import pyarrow.compute as pc

from ...atomic import atomic_dir, write_json
from ...errors import AlbertError
from ...progress import Meter
from ...tokenizer import CLS_ID, SEP_ID, UNK_ID, Tokenizer
from ..corpus import Corpus, Source, TextFileSource
from ..sentences import document_sentences
from .masking import SPECIAL_IDS

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the stored examples change for the same settings
RECENT_DOCUMENTS = 100


# ---------------------------------------------------------------------------------------------
# Sentence-order pairs

class SopExampleBuilder:
    """Sentence-order-prediction examples from one tokenized document (a list of sentences)."""

    def __init__(self, max_seq_length: int, short_seq_prob: float = 0.1):
        if max_seq_length < 5:
            raise AlbertError(f"max_seq_length={max_seq_length} is too small: [CLS] A [SEP] B [SEP] needs at least 5")
        if not 0.0 <= short_seq_prob <= 1.0:
            raise AlbertError(f"short_seq_prob={short_seq_prob} must be in [0, 1]")
        self.max_seq_length = max_seq_length
        self.max_num_tokens = max_seq_length - 3
        self.short_seq_prob = short_seq_prob

    def target_length(self, rng: random.Random) -> int:
        # A rough target for the chunk; max_num_tokens is the hard limit.
        if rng.random() < self.short_seq_prob:
            return rng.randint(2, self.max_num_tokens)
        return self.max_num_tokens

    def examples(self, document: Sequence[Sequence[int]], target: int, rng: random.Random,
                 others: Sequence[Sequence[Sequence[int]]] = ()) -> list[dict[str, Any]]:
        """Rows for `document` (sentences as token ids, none empty). `others` are other documents,
        the source of segment B for chunks of one sentence; with none, such chunks are skipped."""
        rows: list[dict[str, Any]] = []
        chunk: list[Sequence[int]] = []
        length = 0
        for i, sentence in enumerate(document):
            chunk.append(sentence)
            length += len(sentence)
            if i < len(document) - 1 and length < target:
                continue
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            a = [t for s in chunk[:a_end] for t in s]
            if len(chunk) == 1:
                if not others:
                    chunk, length = [], 0
                    continue
                b = self._random_segment(others, target - len(a), rng)
                label = 1
            else:
                b = [t for s in chunk[a_end:] for t in s]
                label = 0
                if rng.random() < 0.5:
                    a, b, label = b, a, 1
            rows.append(self._row(*self._truncate(a, b, rng), label))
            chunk, length = [], 0
        return rows

    @staticmethod
    def _random_segment(others: Sequence[Sequence[Sequence[int]]], want: int, rng: random.Random) -> list[int]:
        doc = others[rng.randint(0, len(others) - 1)]
        out: list[int] = []
        for sentence in doc[rng.randint(0, len(doc) - 1):]:
            out.extend(sentence)
            if len(out) >= want:
                break
        return out

    def _truncate(self, a: list[int], b: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
        # Remove one token at a time from the longer segment (B on ties), front or back at random.
        bounds = [[0, len(a)], [0, len(b)]]
        while (bounds[0][1] - bounds[0][0]) + (bounds[1][1] - bounds[1][0]) > self.max_num_tokens:
            seg = bounds[0] if bounds[0][1] - bounds[0][0] > bounds[1][1] - bounds[1][0] else bounds[1]
            if rng.random() < 0.5:
                seg[0] += 1
            else:
                seg[1] -= 1
        return a[bounds[0][0]:bounds[0][1]], b[bounds[1][0]:bounds[1][1]]

    @staticmethod
    def _row(a: list[int], b: list[int], label: int) -> dict[str, Any]:
        return {"input_ids": [CLS_ID, *a, SEP_ID, *b, SEP_ID],
                "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1),
                "sentence_order_label": label}


def tokenize_document(tokenizer: Tokenizer, sentences: Sequence[str]) -> list[list[int]]:
    """Token ids per sentence; sentences with no tokens are dropped, and so are special ids that
    literal text such as "[MASK]" would produce (they must only appear where we put them)."""
    out = []
    for s in sentences:
        ids = [i for i in tokenizer.encode(s) if i == UNK_ID or i not in SPECIAL_IDS]
        if ids:
            out.append(ids)
    return out


def _generate_examples(shards: list[tuple[int, Source]], tokenizer: Tokenizer, settings: dict[str, Any],
                       max_docs: int | None, progress_dir: str | None = None) -> Iterator[dict[str, Any]]:
    """Examples of the given shards, in order. Each document's randomness is seeded by (seed,
    shard, document, copy), so the result does not depend on how shards are spread over processes.
    With `progress_dir`, each shard's progress is written there (see `BuildProgress`)."""
    builder = SopExampleBuilder(settings["max_seq_length"], settings["short_seq_prob"])
    n_docs = 0
    for shard_index, source in shards:
        report = _ShardReport(progress_dir, shard_index) if progress_dir else None
        recent: deque[list[list[int]]] = deque(maxlen=RECENT_DOCUMENTS)
        for doc_index, paragraphs in enumerate(source.documents(report.read if report else None)):
            if max_docs is not None and n_docs >= max_docs:
                return
            document = tokenize_document(tokenizer, document_sentences(paragraphs))
            if not document:
                continue
            n_docs += 1
            for copy in range(settings["dupe_factor"]):
                rng = random.Random(f"{settings['seed']}/{shard_index}/{doc_index}/{copy}")
                target = builder.target_length(rng)
                rows = builder.examples(document, target, rng, recent)
                if report:
                    report.built(len(rows), documents=copy == 0)
                yield from rows
            recent.append(document)
        if report:
            report.write()


class _ShardReport:
    """A building process's progress on one shard, in a small file the main process reads: how far
    the source was read (its size() units), documents and examples so far; rewritten at most every
    REPORT_EVERY_S seconds."""

    REPORT_EVERY_S = 1.0

    def __init__(self, directory: str, shard_index: int):
        self.path = Path(directory) / f"shard-{shard_index}.json"
        self.state = {"read": 0, "documents": 0, "examples": 0}
        self.written = 0.0

    def read(self, units: int) -> None:
        self.state["read"] = units
        self._maybe_write()

    def built(self, examples: int, documents: bool) -> None:
        self.state["examples"] += examples
        self.state["documents"] += int(documents)
        self._maybe_write()

    def _maybe_write(self) -> None:
        if time.monotonic() - self.written >= self.REPORT_EVERY_S:
            self.write()

    def write(self) -> None:
        self.written = time.monotonic()
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.path)
        except OSError:
            pass  # progress is a courtesy; never fail a build over it


class BuildProgress:
    """The main process's view of a build spread over processes: a thread sums the shards' reports
    onto a progress Meter (bytes read of the corpus, with ETA; documents with --max-docs)."""

    def __init__(self, directory: str, shards: list[tuple[int, Source]], split: str, max_docs: int | None,
                 enabled: bool):
        self.directory = Path(directory)
        self.by_documents = max_docs is not None
        total = max_docs if self.by_documents else sum(s.size() for _, s in shards)
        unit = "documents" if self.by_documents else ("B" if all(isinstance(s, TextFileSource) for _, s in shards)
                                                       else "rows")
        self.meter = Meter(f"building {split} examples", total=total, unit=unit, enabled=enabled)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="build progress", daemon=True)
        if enabled:
            self._thread.start()

    def _read(self) -> None:
        read = documents = examples = 0
        for f in self.directory.glob("shard-*.json"):
            try:
                state = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            read, documents, examples = read + state["read"], documents + state["documents"], examples + state["examples"]
        self.meter.set(documents if self.by_documents else read)
        self.meter.note(f"{examples:,} examples" + ("" if self.by_documents else f" from {documents:,} documents"))

    def _follow(self) -> None:
        while not self._stop.wait(1.0):
            self._read()

    def close(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._read()
        self.meter.close()


# ---------------------------------------------------------------------------------------------
# Building and caching the dataset

def _features():
    return datasets.Features({
        "input_ids": datasets.Sequence(datasets.Value("int32")),
        "token_type_ids": datasets.Sequence(datasets.Value("int8")),
        "sentence_order_label": datasets.Value("int8"),
    })


def _original_error(e: BaseException) -> BaseException:
    """datasets wraps errors raised in a generator; find our own AlbertError inside if there is one."""
    seen = e
    while seen is not None:
        if isinstance(seen, AlbertError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return e


def build_pretraining_dataset(corpus: Corpus, tokenizer: Tokenizer, split: str, max_seq_length: int,
                              cache_dir: str | os.PathLike, *, num_proc: int | None = None, seed: int = 0,
                              dupe_factor: int = 1, short_seq_prob: float = 0.1,
                              max_docs: int | None = None, progress: bool = True):
    """Tokenize `split` of `corpus` into sentence-order pairs, once: the result is cached under
    `cache_dir`, keyed by the corpus files (their paths and contents), the tokenizer and the settings,
    so a second call loads it (memory-mapped) instead of building.

    Returns a `datasets.Dataset` with columns input_ids, token_type_ids (variable length, not
    padded) and sentence_order_label. `num_proc` processes build it, one file (hub: one row range)
    each; `max_docs` keeps only the first documents (for smoke tests) and builds in one process.
    With `progress`, the build shows how much of the corpus it has read, with an ETA (albert/progress.py).
    """
    if dupe_factor < 1:
        raise AlbertError(f"dupe_factor={dupe_factor} must be at least 1")
    if max_docs is not None and max_docs < 1:
        raise AlbertError(f"max_docs={max_docs} must be at least 1")
    split = "valid" if split == "validation" else split
    SopExampleBuilder(max_seq_length, short_seq_prob)  # checks the settings
    procs = max(1, num_proc if num_proc is not None else min(4, os.cpu_count() or 1))
    if max_docs is not None:
        procs = 1
    shards = list(enumerate(corpus.shards(split, procs)))
    settings = {"max_seq_length": max_seq_length, "short_seq_prob": short_seq_prob,
                "dupe_factor": dupe_factor, "seed": seed}
    key_blob = json.dumps({"version": FORMAT_VERSION, "shards": [s.fingerprint() for _, s in shards],
                           "tokenizer": tokenizer.fingerprint(), "settings": settings,
                           # "in all": since max_docs counts over the whole corpus, not per file.
                           "max_docs": None if max_docs is None else [max_docs, "in all"]}, sort_keys=True)
    key = hashlib.sha256(key_blob.encode()).hexdigest()[:20]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(corpus.name).name or "corpus")
    final = Path(cache_dir) / f"sop-{name}-{split}-L{max_seq_length}-{key}"
    if (final / "build.json").is_file():
        log.info("loading cached pretraining examples from %s", final)
        return datasets.load_from_disk(str(final))

    # Fail early, in this process, on an empty corpus (workers would wrap the error).
    next(corpus.documents(split), None)
    return _build(shards, tokenizer, settings, max_docs, procs, final, key, split, progress)


def _build(shards: list[tuple[int, Source]], tokenizer: Tokenizer, settings: dict[str, Any],
           max_docs: int | None, procs: int, final: Path, key: str, split: str, progress: bool):
    final.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    # Everything is built inside temporary directories next to the cache, and the result renamed
    # into place, so a crash never leaves a half-written cache that a later call would trust.
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.") as work, \
            atomic_dir(final, replace=False) as out:  # a concurrent builder that finished first wins
        reports = os.path.join(work, "progress")
        os.mkdir(reports)
        meter = BuildProgress(reports, shards, split, max_docs, enabled=progress)
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # ours counts the corpus read, with an ETA; theirs only rows
        try:
            ds = datasets.Dataset.from_generator(
                _generate_examples, features=_features(), cache_dir=os.path.join(work, "generate"),
                # datasets calls the generator once per item of a list argument: a tuple keeps
                # max_docs counting over all the shards.
                gen_kwargs={"shards": shards if max_docs is None else tuple(shards), "tokenizer": tokenizer,
                            "settings": settings, "max_docs": max_docs,
                            "progress_dir": reports if progress else None},
                num_proc=procs if len(shards) > 1 else None, fingerprint=key,
            )
        except Exception as e:
            original = _original_error(e)
            if original is e:
                raise
            raise original from None
        finally:
            meter.close()
            if bars:
                datasets.enable_progress_bars()
        if len(ds) == 0:
            raise AlbertError(f"{final.name}: the corpus gave no examples (are its documents empty?)")
        ds.save_to_disk(str(out))
        tokens = pc.sum(pc.list_value_length(ds.data.column("input_ids"))).as_py()
        info = {**settings, "examples": len(ds), "tokens": tokens, "build_seconds": round(time.time() - started, 1)}
        write_json(out / "build.json", info)
        del ds
    log.info("built %d pretraining examples in %.0f s: %s", info["examples"], info["build_seconds"], final)
    return datasets.load_from_disk(str(final))
