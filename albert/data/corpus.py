"""Pretraining corpora: find the text, stream it as documents of sentences.

A corpus is named by a spec string (see `resolve_corpus`). Whatever its source, it reads as
documents, each a list of sentences, streamed one at a time so that a corpus of many GB is never
held in memory. Two splits exist: "train" and "valid" (held out); how the held-out documents are
chosen depends on the source and is stated in `Corpus.held_out`.

Text model (local files): a blank line ends a document, every other line is a paragraph, and a
paragraph is split into sentences by `sentences.split_sentences`. In the "wiki" format (WikiExtractor
output, as in $ALBERT_DATA/wiki) the first line of each document is the article title and
section headings are short lines such as "Early life."; both are dropped because they are not
prose and would make sentence-order prediction trivially easy. In the "wikitext" format
(WikiText .raw files) " = Title = " lines start documents and " = = Section = = " lines are
headings.
"""
from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import json
import logging
import os
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import datasets

from ..errors import AlbertError
from .sentences import HEADING_MAX_WORDS, document_sentences, is_heading

log = logging.getLogger(__name__)

SPLITS = ("train", "valid")
# Local corpora without a held-out file keep one document in HOLD_OUT_EVERY for "valid".
HOLD_OUT_EVERY = 100
# Longer lines are cut (at a space where possible) so that one pathological line, such as a
# file without newlines, cannot take all the memory.
MAX_LINE_CHARS = 10_000
# A "document" with no blank line for this many characters is cut into several documents.
MAX_DOC_CHARS = 1_000_000

FORMATS = ("plain", "wiki", "wikitext")

# ---------------------------------------------------------------------------------------------
# Reading text files robustly

class _DecodeErrors(threading.local):
    count = 0


_decode_errors = _DecodeErrors()


def _count_and_replace(exc: UnicodeDecodeError) -> tuple[str, int]:
    _decode_errors.count += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error("albert.count_replace", _count_and_replace)


# Lines between two calls of a reader's `progress` callback.
PROGRESS_EVERY_LINES = 2000

Progress = Callable[[int], None]  # told how far a source has been read, in its size() units


def lenient_lines(path: Path, progress: Progress | None = None) -> Iterator[str]:
    """Stream the lines of a text file (plain or .gz), without line ends.

    Bytes that are not UTF-8 become U+FFFD and are counted (a warning names the file); a line
    longer than MAX_LINE_CHARS comes out in pieces, cut at a space where there is one.
    `progress(bytes)` is told now and then how many bytes of the file (compressed, for .gz) were read.
    """
    disk = open(path, "rb")
    raw = gzip.GzipFile(fileobj=disk, mode="rb") if path.name.endswith(".gz") else disk
    bad = 0
    lines = 0
    try:
        with io.TextIOWrapper(raw, encoding="utf-8", errors="albert.count_replace", newline=None) as f:
            carry = ""
            while True:
                lines += 1
                if progress is not None and lines % PROGRESS_EVERY_LINES == 0:
                    progress(disk.tell())
                before = _decode_errors.count
                try:
                    # Never more than MAX_LINE_CHARS in all, with what is carried over.
                    piece = f.readline(MAX_LINE_CHARS - len(carry))
                except (OSError, EOFError, zlib.error) as e:  # truncated or corrupt gzip
                    raise AlbertError(f"{path}: cannot read: {e}") from e
                bad += _decode_errors.count - before
                text = carry + piece
                if piece.endswith("\n") or len(text) < MAX_LINE_CHARS:  # a whole line, or the end
                    if not piece:
                        if carry:
                            yield carry
                        if progress is not None:
                            progress(disk.tell())  # the whole file
                        break
                    yield text[:-1] if piece.endswith("\n") else text
                    carry = ""
                    continue
                # Part of an over-long line: emit up to its last space, carry the rest over.
                cut = text.rfind(" ")
                if cut <= 0 or not text[:cut].strip():
                    cut = len(text)
                yield text[:cut]
                carry = text[cut:].lstrip(" ")
    finally:
        raw.close()
        disk.close()
        if bad:
            log.warning("%s: replaced %d bytes that are not valid UTF-8", path, bad)


def _blocks(lines: Iterable[str]) -> Iterator[list[str]]:
    """Group stripped lines into blank-line separated blocks (very long blocks are cut)."""
    block: list[str] = []
    size = 0
    for line in lines:
        line = line.strip()
        if not line:
            if block:
                yield block
            block, size = [], 0
            continue
        block.append(line)
        size += len(line)
        if size >= MAX_DOC_CHARS:
            yield block
            block, size = [], 0
    if block:
        yield block


_WIKITEXT_TITLE = re.compile(r"^= [^=].* =$")
_WIKITEXT_HEADING = re.compile(r"^=(?: =)+ .* =(?: =)+$")
_WIKITEXT_ESCAPES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_WIKITEXT_SPACE_BEFORE = re.compile(r" (?=[.,;:!?)\]]|'s\b|n't\b)")


def _wikitext_paragraph(line: str) -> str:
    for old, new in _WIKITEXT_ESCAPES:
        line = line.replace(old, new)
    return _WIKITEXT_SPACE_BEFORE.sub("", line)


def _wikitext_documents(lines: Iterable[str]) -> Iterator[list[str]]:
    """WikiText: " = Title = " starts an article; blank lines only separate paragraphs."""
    doc: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if _WIKITEXT_TITLE.match(line):
            if doc:
                yield doc
            doc = []
        elif not _WIKITEXT_HEADING.match(line):
            doc.append(_wikitext_paragraph(line))
    if doc:
        yield doc


# ---------------------------------------------------------------------------------------------
# Sources: independent streams of documents (lists of paragraphs), one per file or hub shard,
# so that several processes can each read one.

class Source(Protocol):
    def documents(self, progress: Progress | None = None) -> Iterator[list[str]]: ...
    def size(self) -> int: ...  # in the units documents() reports its progress in
    def fingerprint(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Selection:
    """Which documents of a source belong to the split: all, or by index modulo HOLD_OUT_EVERY.

    `offset` shifts the index (the file's ordinal in the corpus) so that a directory of many
    one-document files still holds out ~1% of them rather than all of them.
    """
    take: str = "all"  # "all" | "train" | "valid"
    offset: int = 0

    def keep(self, index: int) -> bool:
        if self.take == "all":
            return True
        held_out = (index + self.offset) % HOLD_OUT_EVERY == 0
        return held_out if self.take == "valid" else not held_out


@dataclass(frozen=True)
class TextFileSource:
    path: Path
    fmt: str = "plain"
    drop_headings: bool = True
    selection: Selection = field(default_factory=Selection)

    def _raw_documents(self, progress: Progress | None = None) -> Iterator[list[str]]:
        lines = lenient_lines(self.path, progress)
        if self.fmt == "wikitext":
            yield from _wikitext_documents(lines)
            return
        for block in _blocks(lines):
            if self.fmt == "wiki":
                block = block[1:]  # the article title
                if self.drop_headings:
                    block = [p for p in block if not is_heading(p)]
            yield block

    def documents(self, progress: Progress | None = None) -> Iterator[list[str]]:
        """The documents; `progress(bytes)` is told how much of the file was read."""
        for i, doc in enumerate(self._raw_documents(progress)):
            if self.selection.keep(i):
                yield doc

    def size(self) -> int:
        return self.path.stat().st_size

    def fingerprint(self) -> dict[str, Any]:
        # The content, not the modification time: a copied or re-provisioned corpus (same bytes,
        # new mtimes) keeps its cached pretraining examples (2.5-7 minutes to rebuild for wiki).
        return {"path": str(self.path.resolve()), "sha256": content_hash(self.path),
                "fmt": self.fmt, "drop_headings": self.drop_headings,
                "selection": [self.selection.take, self.selection.offset]}


@dataclass(frozen=True)
class HubSource:
    """Rows [start, stop) of a hub dataset (already downloaded by `resolve_corpus`)."""
    dataset: Any  # datasets.Dataset; memory-mapped, so it pickles by file reference
    name: str
    fmt: str  # "wikipedia": one article per row; "wikitext": one line per row
    start: int = 0
    stop: int | None = None
    selection: Selection = field(default_factory=Selection)

    def documents(self, progress: Progress | None = None) -> Iterator[list[str]]:
        """The documents; `progress(rows)` is told how many of the rows were read."""
        stop = len(self.dataset) if self.stop is None else self.stop
        part = self.dataset.select(range(self.start, stop))

        def batches() -> Iterator[list[str]]:
            for k, batch in enumerate(part.iter(batch_size=256)):
                if progress is not None:
                    progress(min(k * 256, stop - self.start))
                yield batch["text"]
            if progress is not None:
                progress(stop - self.start)

        rows = (text for batch in batches() for text in batch)
        if self.fmt == "wikitext":
            # Rows are lines; a shard boundary may cut one article in two, which costs little.
            yield from _wikitext_documents(line for row in rows for line in row.split("\n"))
            return
        for i, text in enumerate(rows, start=self.start):
            if not self.selection.keep(i):
                continue
            yield [p for p in (line.strip() for line in text.split("\n")) if p and not _is_hub_heading(p)]

    def size(self) -> int:
        return (len(self.dataset) if self.stop is None else self.stop) - self.start

    def shard(self, count: int) -> list["HubSource"]:
        stop = len(self.dataset) if self.stop is None else self.stop
        bounds = [self.start + (stop - self.start) * k // count for k in range(count + 1)]
        return [HubSource(self.dataset, self.name, self.fmt, a, b, self.selection)
                for a, b in zip(bounds, bounds[1:]) if b > a]

    def fingerprint(self) -> dict[str, Any]:
        return {"hub": self.name, "fingerprint": getattr(self.dataset, "_fingerprint", None),
                "rows": [self.start, self.stop], "fmt": self.fmt,
                "selection": [self.selection.take, self.selection.offset]}


def _is_hub_heading(line: str) -> bool:
    # Headings in the hub's Wikipedia text are short lines without end punctuation ("History").
    return len(line.split()) <= HEADING_MAX_WORDS and line[-1] not in ".!?:"


# ---------------------------------------------------------------------------------------------
# Corpus

@dataclass
class Corpus:
    """A named corpus with a "train" and a held-out "valid" split.

    `held_out` says how "valid" was chosen: the separate held-out file (wiki-valid.txt.gz for
    "wiki"), the source's own validation split (wikitext-103), or, for a local path, the
    documents whose index (counted per file, shifted by the file's ordinal) is a multiple of 100.
    """
    name: str
    sources: dict[str, list[Source]]
    held_out: str

    def _sources(self, split: str) -> list[Source]:
        if split == "validation":
            split = "valid"
        if split not in self.sources:
            raise AlbertError(f"corpus {self.name}: unknown split {split!r} (choose from {', '.join(SPLITS)})")
        return self.sources[split]

    def shards(self, split: str, count: int = 1) -> list[Source]:
        """Independent document streams that together make the split, in order."""
        out: list[Source] = []
        for src in self._sources(split):
            out.extend(src.shard(count) if isinstance(src, HubSource) and count > 1 else [src])
        return out

    def paragraphs(self, split: str) -> Iterator[list[str]]:
        """Non-empty documents as lists of paragraphs."""
        found = False
        for src in self._sources(split):
            for doc in src.documents():
                if doc:
                    found = True
                    yield doc
        if not found:
            raise AlbertError(f"corpus {self.name} ({split}) is empty: no document has any text")

    def documents(self, split: str, max_docs: int | None = None) -> Iterator[list[str]]:
        """Documents as lists of sentences, streamed; empty documents are skipped."""
        n = 0
        for paras in self.paragraphs(split):
            if max_docs is not None and n >= max_docs:
                return
            yield document_sentences(paras)
            n += 1

    def texts(self, split: str = "train") -> Iterator[str]:
        """Paragraphs, one string each: the input for training a tokenizer."""
        for paras in self.paragraphs(split):
            yield from paras

    def fingerprint(self, split: str) -> str:
        """A hash of what the split reads: files and their contents, or hub dataset ids."""
        blob = json.dumps([s.fingerprint() for s in self._sources(split)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


_HASHES: dict[tuple[str, int, int, int], str] = {}


def content_hash(path: Path) -> str:
    """sha256 of a file's bytes, remembered for this process until the file's status changes
    (the change time moves on every write, and cannot be set back as the mtime can)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _auto_format(path: Path) -> str:
    name = path.name
    if re.match(r"wiki-.*\.txt(\.gz)?$", name):
        return "wiki"
    if re.match(r"wiki\..*\.(raw|tokens)$", name):
        return "wikitext"
    return "plain"


def _local_files(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        if not files:
            raise AlbertError(f"corpus {spec}: no file matches this pattern")
        return files
    if not path.exists():
        raise AlbertError(f"corpus {spec}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and (p.name.endswith(".txt") or p.name.endswith(".txt.gz")))
        if not files:
            raise AlbertError(f"corpus {spec} is empty: the directory has no *.txt or *.txt.gz file")
        return files
    return [path]


def _local_corpus(name: str, files: list[Path], fmt: str | None, drop_headings: bool) -> Corpus:
    def src(i: int, f: Path, take: str) -> TextFileSource:
        return TextFileSource(f, fmt or _auto_format(f), drop_headings, Selection(take, i))

    return Corpus(
        name,
        {split: [src(i, f, split) for i, f in enumerate(files)] for split in SPLITS},
        held_out=f"documents whose index (per file, plus the file's ordinal) is a multiple of {HOLD_OUT_EVERY}",
    )


def _hub(path: str, config: str, split: str):
    try:
        return datasets.load_dataset(path, config, split=split)
    except Exception as e:  # offline, not found, or a broken cache: all mean "cannot have it"
        raise _unavailable(f"hub dataset {path} ({config}, {split})", e) from e


def _unavailable(what: str, cause: Exception | None = None) -> AlbertError:
    msg = (f"cannot load {what}" + (f" ({type(cause).__name__}: {str(cause).splitlines()[0][:200]})" if cause else "")
           + "; set ALBERT_DATA (or --data-root) to a directory with local files, or pass a local path as the corpus")
    return AlbertError(msg)


def resolve_corpus(spec: str, data_root: str | os.PathLike | None = None, *,
                   fmt: str | None = None, drop_headings: bool = True) -> Corpus:
    """Find a corpus by name or path.

    - "wiki": English Wikipedia; local shards `<data_root>/wiki/wiki-0*.txt.gz` (train) and
      `wiki-valid.txt.gz` (held out) when present, else hub `wikimedia/wikipedia` 20231101.en
      (held out: rows whose index is a multiple of 100).
    - "wikitext-103": local `<data_root>/wikitext-103-raw/wiki.{train,valid}.raw` when present,
      else hub `Salesforce/wikitext` wikitext-103-raw-v1 (its own validation split).
    - anything else: a local text file, a directory (its *.txt and *.txt.gz files) or a glob.

    `data_root` defaults to $ALBERT_DATA. `fmt` ("plain", "wiki", "wikitext") overrides the
    format guessed from file names; `drop_headings` applies to the wiki format.
    """
    if fmt is not None and fmt not in FORMATS:
        raise AlbertError(f"corpus format {fmt!r}: choose from {', '.join(FORMATS)}")
    root = data_root if data_root is not None else os.environ.get("ALBERT_DATA")
    root = Path(root).expanduser() if root else None

    if spec == "wiki":
        return _wiki_corpus(root, fmt or "wiki", drop_headings)
    if spec == "wikitext-103":
        return _wikitext103_corpus(root)
    return _local_corpus(spec, _local_files(spec), fmt, drop_headings)


def _wiki_corpus(root: Path | None, fmt: str, drop_headings: bool) -> Corpus:
    train = sorted((root / "wiki").glob("wiki-0*.txt.gz")) if root else []
    valid = root / "wiki" / "wiki-valid.txt.gz" if root else None
    if train and valid is not None and valid.is_file():
        return Corpus("wiki", {"train": [TextFileSource(f, fmt, drop_headings) for f in train],
                               "valid": [TextFileSource(valid, fmt, drop_headings)]},
                      held_out=f"the separate file {valid}")
    if train:
        return _local_corpus("wiki", train, fmt, drop_headings)
    looked = root / "wiki" / "wiki-0*.txt.gz" if root else "$ALBERT_DATA/wiki/wiki-0*.txt.gz (ALBERT_DATA is not set)"
    try:
        ds = _hub("wikimedia/wikipedia", "20231101.en", "train")
    except AlbertError as e:
        raise AlbertError(f"corpus wiki: no local files at {looked}, and {e}") from None
    return Corpus("wiki", {s: [HubSource(ds, "wikimedia/wikipedia:20231101.en", "wikipedia", selection=Selection(s))]
                           for s in SPLITS},
                  held_out=f"hub rows whose index is a multiple of {HOLD_OUT_EVERY}")


def _wikitext103_corpus(root: Path | None) -> Corpus:
    local = root / "wikitext-103-raw" if root else None
    if local is not None and all((local / f"wiki.{s}.raw").is_file() for s in SPLITS):
        return Corpus("wikitext-103", {s: [TextFileSource(local / f"wiki.{s}.raw", "wikitext")] for s in SPLITS},
                      held_out="the WikiText validation file")
    looked = f"{local}/wiki.{{train,valid}}.raw" if local else "$ALBERT_DATA/wikitext-103-raw (ALBERT_DATA is not set)"
    try:
        parts = {s: _hub("Salesforce/wikitext", "wikitext-103-raw-v1", hub_split)
                 for s, hub_split in (("train", "train"), ("valid", "validation"))}
    except AlbertError as e:
        raise AlbertError(f"corpus wikitext-103: no local files at {looked}, and {e}") from None
    return Corpus("wikitext-103",
                  {s: [HubSource(ds, f"Salesforce/wikitext:wikitext-103-raw-v1:{s}", "wikitext")]
                   for s, ds in parts.items()},
                  held_out="the WikiText validation split")
