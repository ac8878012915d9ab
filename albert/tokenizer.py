"""ALBERT's SentencePiece tokenizer, id-for-id the same as transformers' `AlbertTokenizer`.

Text goes through the same steps as in transformers:
  1. the special tokens ([CLS], [SEP], [MASK], <pad>, <unk>) are cut out of the raw text first;
  2. `` and '' become ", accents are stripped (NFKD, marks dropped) unless keep_accents, and the
     text is lower-cased unless do_lower_case is off (character by character, as Rust does);
  3. SentencePiece's own normalizer (nmt_nfkc, stored in spiece.model) runs, then the text is
     split on whitespace and every word gets the "▁" prefix and is segmented on its own.
Pieces ending in "<digit>," get their score lowered by 100, as transformers' converter does for
ALBERT (the hub's tokenizer.json): "1,000" is then never cut as "1," + "000".
"""
from __future__ import annotations

import functools
import io
import json
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import sentencepiece as spm

from .atomic import atomic_write, write_json
from .errors import AlbertError

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_PIECES = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
MODEL_FILE = "spiece.model"
CONFIG_FILE = "tokenizer_config.json"
WORD_START = "\u2581"  # "▁", SentencePiece's word-start marker

# Whitespace as Rust's char::is_whitespace sees it (transformers splits words with it); unlike
# Python's str.split() it leaves \x1c-\x1f alone.
_WHITESPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000" + WORD_START + "]+")
_SPECIALS = re.compile("(" + "|".join(re.escape(p) for p in SPECIAL_PIECES) + ")")
_DIGIT_COMMA_PENALTY = 100.0


def normalize(text: str, *, do_lower_case: bool = True, keep_accents: bool = False) -> str:
    """ALBERT's preprocessing before SentencePiece: quotes, accents, case, and collapsed whitespace."""
    text = text.replace("``", '"').replace("''", '"')
    if not keep_accents:
        text = _strip_accents(text)
    if do_lower_case:
        text = _lower(text)
    return " ".join(w for w in _WHITESPACE.split(text) if w)


def _lower(text: str) -> str:
    # str.lower() applies the final-sigma rule to whole words; Rust lowers char by char ("Σ" -> "σ").
    if "\u03a3" in text:
        return "".join(c.lower() for c in text)
    return text.lower()


def _strip_accents(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    if text.isascii():
        return text
    return "".join(c for c in text if not unicodedata.category(c).startswith("M"))


def _is_digit_comma(piece: str) -> bool:
    return len(piece) >= 2 and piece[-1] == "," and piece[-2].isdigit()


class _Unigram:
    """Best segmentation of one word under the unigram model, as the tokenizers library finds it.

    SentencePiece's own encoder sums scores in float32 and so breaks exact ties differently (e.g.
    in runs of dashes); this Viterbi pass sums in float64 and, like tokenizers, keeps the first
    best path found, i.e. the one whose last piece starts earliest. Control pieces take part with
    their 0.0 score, as they do in transformers. Runs of unknown characters become one <unk>.
    """

    def __init__(self, pieces: list[str], scores: list[float]):
        self.ids = {p: i for i, p in enumerate(pieces)}
        self.scores = scores
        self.max_len = max(len(p) for p in pieces)
        self.unk_score = min(scores) - 10.0  # tokenizers' K_UNK_PENALTY
        self.segment = functools.lru_cache(maxsize=1 << 17)(self._segment)

    def _segment(self, word: str) -> tuple[int, ...]:
        n = len(word)
        best = [0.0] + [float("-inf")] * n  # best score of a path covering word[:end]
        start_of = [-1] * (n + 1)  # where the last piece of that path starts
        id_of = [UNK_ID] * (n + 1)
        for start in range(n):
            base = best[start]
            single_char = False
            for end in range(start + 1, min(n, start + self.max_len) + 1):
                i = self.ids.get(word[start:end])
                if i is None:
                    continue
                single_char = single_char or end == start + 1
                score = base + self.scores[i]
                if start_of[end] < 0 or score > best[end]:
                    best[end], start_of[end], id_of[end] = score, start, i
            if not single_char:
                score = base + self.unk_score
                if start_of[start + 1] < 0 or score > best[start + 1]:
                    best[start + 1], start_of[start + 1], id_of[start + 1] = score, start, UNK_ID
        ids: list[int] = []
        end = n
        while end > 0:
            i = id_of[end]
            if not (i == UNK_ID and ids and ids[-1] == UNK_ID):  # fuse a run of unknowns
                ids.append(i)
            end = start_of[end]
        return tuple(reversed(ids))


class Tokenizer:
    """A loaded spiece.model plus ALBERT's text preprocessing."""

    def __init__(self, model_proto: bytes, *, do_lower_case: bool = True, keep_accents: bool = False,
                 source: str | Path = "<memory>"):
        self.do_lower_case = do_lower_case
        self.keep_accents = keep_accents
        self._proto = model_proto  # as read, so save() writes back the same file
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(model_proto)
        except Exception as e:
            raise AlbertError(f"{source}: not a SentencePiece model ({e})") from None
        self._pieces = [self._sp.IdToPiece(i) for i in range(self._sp.GetPieceSize())]
        if tuple(self._pieces[:len(SPECIAL_PIECES)]) != SPECIAL_PIECES:
            raise AlbertError(f"{source}: not an ALBERT vocabulary: ids 0-4 must be {', '.join(SPECIAL_PIECES)}, "
                              f"found {', '.join(self._pieces[:len(SPECIAL_PIECES)])}")
        scores = [self._sp.GetScore(i) - (_DIGIT_COMMA_PENALTY if _is_digit_comma(p) else 0.0)
                  for i, p in enumerate(self._pieces)]
        self._unigram = _Unigram(self._pieces, scores)
        self._special_id = {p: i for i, p in enumerate(SPECIAL_PIECES)}

    # ----- loading and saving

    @classmethod
    def load(cls, path: str | Path, *, do_lower_case: bool | None = None,
             keep_accents: bool | None = None) -> "Tokenizer":
        """Load `path` (a spiece.model, or a directory holding one and maybe tokenizer_config.json)."""
        path = Path(path)
        model_file = path / MODEL_FILE if path.is_dir() else path
        try:
            proto = model_file.read_bytes()
        except OSError as e:
            raise AlbertError(f"{model_file}: cannot read the SentencePiece model ({e.strerror or e})") from None
        settings = _read_config(model_file.parent / CONFIG_FILE)
        if do_lower_case is None:
            do_lower_case = bool(settings.get("do_lower_case", True))
        if keep_accents is None:
            keep_accents = bool(settings.get("keep_accents", False))
        return cls(proto, do_lower_case=do_lower_case, keep_accents=keep_accents, source=model_file)

    def save(self, directory: str | Path) -> None:
        """Write spiece.model and a tokenizer_config.json that transformers' AutoTokenizer reads."""
        directory = Path(directory)
        with atomic_write(directory / MODEL_FILE, "wb") as f:
            f.write(self._proto)
        write_json(directory / CONFIG_FILE, {
            "tokenizer_class": "AlbertTokenizer",
            "do_lower_case": self.do_lower_case,
            "keep_accents": self.keep_accents,
        })

    # ----- vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def cls_id(self) -> int:
        return CLS_ID

    @property
    def sep_id(self) -> int:
        return SEP_ID

    @property
    def mask_id(self) -> int:
        return MASK_ID

    def id_to_piece(self, i: int) -> str:
        if not 0 <= i < len(self._pieces):
            raise AlbertError(f"token id {i} is outside the vocabulary (0..{len(self._pieces) - 1})")
        return self._pieces[i]

    def piece_to_id(self, p: str) -> int:
        return self._sp.PieceToId(p)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.id_to_piece(int(i)) for i in ids]

    def word_start_mask(self) -> np.ndarray:
        """True where a piece begins a word ("▁" prefix) or is a special token; whole-word masking uses it."""
        mask = np.array([p.startswith(WORD_START) for p in self._pieces], dtype=bool)
        for i in range(len(self._pieces)):
            if self._sp.IsControl(i) or self._sp.IsUnknown(i) or self._sp.IsUnused(i):
                mask[i] = True
        mask[: len(SPECIAL_PIECES)] = True
        return mask

    # ----- text to ids

    def normalize(self, text: str) -> str:
        """ALBERT's preprocessing before SentencePiece: quotes, accents, case, and collapsed whitespace."""
        return normalize(text, do_lower_case=self.do_lower_case, keep_accents=self.keep_accents)

    def _words(self, text: str) -> list[str]:
        # SentencePiece's normalizer must run before the split: it deletes some whitespace (\v) and
        # turns some non-whitespace into spaces, and transformers splits its output.
        normalized = self._sp.Normalize(self.normalize(text))
        return [w for w in _WHITESPACE.split(normalized) if w]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without [CLS]/[SEP]."""
        ids: list[int] = []
        for segment in _SPECIALS.split(text):
            if segment in self._special_id:
                ids.append(self._special_id[segment])
            elif segment:
                for word in self._words(segment):
                    ids.extend(self._unigram.segment(WORD_START + word))
        return ids

    def tokenize(self, text: str) -> list[str]:
        return [self._pieces[i] for i in self.encode(text)]

    def encode_words(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Ids of pre-split words and, for each id, the index of its word (NER, SQuAD)."""
        ids: list[int] = []
        word_index: list[int] = []
        for i, word in enumerate(words):
            word_ids = self.encode(word)
            ids.extend(word_ids)
            word_index.extend([i] * len(word_ids))
        return ids, word_index

    def build_inputs(self, a: list[int], b: list[int] | None = None,
                     max_length: int | None = None) -> tuple[list[int], list[int]]:
        """[CLS] a [SEP] (b [SEP]) and its token types; truncated longest-first to max_length."""
        if max_length is not None:
            a, b = _truncate_longest_first(a, b, max_length)
        input_ids = [CLS_ID, *a, SEP_ID]
        token_type_ids = [0] * len(input_ids)
        if b is not None:
            input_ids += [*b, SEP_ID]
            token_type_ids += [1] * (len(b) + 1)
        return input_ids, token_type_ids

    def __call__(self, text: str, text_pair: str | None = None,
                 max_length: int | None = None) -> dict[str, list[int]]:
        a = self.encode(text)
        b = self.encode(text_pair) if text_pair is not None else None
        input_ids, token_type_ids = self.build_inputs(a, b, max_length)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": [1] * len(input_ids)}

    # ----- ids to text

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids` as transformers' decode() gives it: "▁" becomes a space, the first one dropped."""
        pieces = [self.id_to_piece(int(i)) for i in ids
                  if not (skip_special_tokens and int(i) < len(SPECIAL_PIECES))]
        text = "".join(pieces)
        if text.startswith(WORD_START):
            text = text[1:]
        return text.replace(WORD_START, " ")


def _truncate_longest_first(a: list[int], b: list[int] | None, max_length: int) -> tuple[list[int], list[int] | None]:
    """transformers' `truncation=True` (longest_first) as the tokenizers library computes it."""
    specials = 2 if b is None else 3
    if max_length < specials:
        raise AlbertError(f"max_length={max_length} leaves no room for the {specials} special tokens")
    room = max_length - specials
    if b is None:
        return a[:room], None
    if len(a) + len(b) <= room:
        return a, b
    short, long_ = sorted((len(a), len(b)))
    if short > room:
        long_ = short
    else:
        long_ = max(short, room - short)
    if short + long_ > room:
        short = room // 2
        long_ = short + room % 2
    n_a, n_b = (long_, short) if len(a) > len(b) else (short, long_)
    return a[:n_a], b[:n_b]


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AlbertError(f"{path}: cannot read tokenizer settings ({e})") from None
    if not isinstance(settings, dict):
        raise AlbertError(f"{path}: expected a JSON object of tokenizer settings")
    return settings


# ----- training


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 30000, *,
                    sample_size: int = 1_000_000, character_coverage: float = 0.99995, seed: int = 0,
                    num_threads: int = 2) -> Tokenizer:
    """Train a unigram SentencePiece model the way ALBERT's was, save it to out_dir, and load it.

    Lines are normalized (lower-cased, accents stripped) with the same code that encodes, so the
    vocabulary is built from exactly what the model will later see.
    """
    if vocab_size <= len(SPECIAL_PIECES):
        raise AlbertError(f"--vocab-size {vocab_size} is too small: ALBERT needs more than "
                          f"{len(SPECIAL_PIECES)} special pieces")
    lines = _nonempty(normalize(t) for t in texts)
    first = next(lines, None)
    if first is None:
        raise AlbertError("cannot train a tokenizer: the input text is empty")

    def sentences() -> Iterator[str]:
        yield first
        yield from lines

    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(), model_writer=model, model_type="unigram", vocab_size=vocab_size,
            character_coverage=character_coverage, input_sentence_size=sample_size, shuffle_input_sentence=True,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1, pad_piece="<pad>", unk_piece="<unk>",
            control_symbols=list(SPECIAL_PIECES[CLS_ID:]), num_threads=num_threads, minloglevel=2,
        )
    except RuntimeError as e:
        if "Vocabulary size too high" in str(e) or "vocab_size" in str(e).lower():
            raise AlbertError(f"the text cannot support a vocabulary of {vocab_size} pieces ({e}); "
                              f"use a smaller --vocab-size or more text") from None
        raise AlbertError(f"SentencePiece training failed: {e}") from None
    out_dir = Path(out_dir)
    with atomic_write(out_dir / MODEL_FILE, "wb") as f:
        f.write(model.getvalue())
    tokenizer = Tokenizer(model.getvalue(), source=out_dir / MODEL_FILE)
    tokenizer.save(out_dir)
    return tokenizer


def _nonempty(lines: Iterable[str]) -> Iterator[str]:
    return (line for line in lines if line)
