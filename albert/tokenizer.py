"""ALBERT's SentencePiece tokenizer, id for id the same as transformers' `AlbertTokenizer`.

transformers (v5) runs a spiece.model through the `tokenizers` library, not through SentencePiece,
and the two disagree in corner cases, so this module follows transformers step by step:
  1. the special tokens ([CLS], [SEP], [MASK], <pad>, <unk>) are cut out of the raw text;
  2. `` and '' become ", accents go (NFKD, marks dropped) unless keep_accents, and the text is
     lower-cased unless do_lower_case is off                                  -> `normalize()`;
  3. the model's own nmt_nfkc table (precompiled in spiece.model) is applied grapheme by grapheme,
     as tokenizers' `Precompiled` normalizer does it                          -> `_CharsMap`;
  4. the text is split on whitespace and before every "▁", each word starts with "▁";
  5. each word gets its best unigram segmentation, ties broken as tokenizers does -> `_Unigram`.
Pieces ending in "<digit>," lose 100 from their score, as in transformers' ALBERT converter (the
tokenizer.json of the published checkpoints), so "1,000" is never cut as "1," + "000". Models
trained here never have such pieces: SentencePiece keeps digits apart from other characters.

SentencePiece itself is used to train models, and to read and validate them.
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
_WHITESPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_BEFORE_WORD_START = re.compile(f"(?={WORD_START})")
_SPECIALS = re.compile("(" + "|".join(re.escape(p) for p in SPECIAL_PIECES) + ")")
_DIGIT_COMMA_PENALTY = 100.0


def normalize(text: str, *, do_lower_case: bool = True, keep_accents: bool = False) -> str:
    """ALBERT's preprocessing before SentencePiece's own table: quotes, accents and case.

    The steps and their order are transformers' (Replace, NFKD + StripAccents, Lowercase).
    Whitespace is left alone: the model's table and the word split that follows deal with it.
    """
    text = text.replace("``", '"').replace("''", '"')
    if not keep_accents:
        text = unicodedata.normalize("NFKD", text)
        if not text.isascii():
            text = "".join(c for c in text if not unicodedata.category(c).startswith("M"))
    if do_lower_case:
        # str.lower() applies the final-sigma rule; Rust lowers char by char ("Σ" -> "σ").
        text = "".join(c.lower() for c in text) if "\u03a3" in text else text.lower()
    return text


# ----- SentencePiece's precompiled normalization table


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _proto_field(buf: bytes, number: int) -> bytes | None:
    """The first length-delimited field `number` of a serialized protobuf message.

    Enough of the wire format to fetch the normalization table out of a ModelProto without
    depending on the protobuf package.
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if key >> 3 == number:
                return buf[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return None


class _CharsMap:
    """The nmt_nfkc table stored in spiece.model, applied as tokenizers' `Precompiled` does it.

    The blob is a darts-clone double-array trie over UTF-8 keys followed by the NUL-terminated
    replacement strings. tokenizers looks up whole grapheme clusters (under 6 bytes) and takes
    the *shortest* key that is a prefix, replacing the whole cluster with it: "\\xa0\\u0301"
    becomes " ", mark and all. SentencePiece itself would keep the mark; we do what transformers does.
    """

    def __init__(self, blob: bytes):
        trie_size = int.from_bytes(blob[:4], "little")
        self.units = np.frombuffer(blob[4:4 + trie_size], dtype="<u4").tolist()
        self.replacements = blob[4 + trie_size:]
        self.transform = functools.lru_cache(maxsize=1 << 16)(self._transform)
        ascii_map = {c: self.transform(chr(c)) for c in range(128)}
        self.ascii = str.maketrans({c: r for c, r in ascii_map.items() if r is not None})
        self.space_maps_to_itself = ascii_map[ord(" ")] in (None, " ")
        self.word = functools.lru_cache(maxsize=1 << 18)(self._clusters)

    def _transform(self, chunk: str) -> str | None:
        """The replacement of the shortest key that starts `chunk`, if any."""
        units = self.units
        node = units[0] >> 10 << ((units[0] & (1 << 9)) >> 6)
        for byte in chunk.encode("utf-8"):
            if byte == 0:
                return None
            node ^= byte
            unit = units[node]
            if unit & ((1 << 31) | 0xFF) != byte:  # the unit's label
                return None
            node ^= unit >> 10 << ((unit & (1 << 9)) >> 6)  # its offset
            if unit >> 8 & 1:  # a key ends here: the shortest match wins
                start = units[node] & 0x7FFFFFFF
                return self.replacements[start:self.replacements.index(b"\0", start)].decode("utf-8")
        return None

    def __call__(self, text: str) -> str:
        if text.isascii() and "\r\n" not in text:  # then every character is a cluster of its own
            return text.translate(self.ascii)
        # A cluster never spans an ASCII space unless the next character joins it (a combining
        # mark), so words can be mapped on their own, and cached: words repeat, lines do not.
        if self.space_maps_to_itself:
            words = text.split(" ")
            if not any(w and _joins_previous(w[0]) for w in words[1:]):
                return " ".join(map(self.word, words))
        return self._clusters(text)

    def _clusters(self, text: str) -> str:
        if text.isascii() and "\r\n" not in text:
            return text.translate(self.ascii)
        out = []
        for cluster in _graphemes(text):
            if len(cluster.encode("utf-8")) < 6:
                replacement = self.transform(cluster)
                if replacement is not None:
                    out.append(replacement)
                    continue
            for c in cluster:
                replacement = self.transform(c)
                out.append(c if replacement is None else replacement)
        return "".join(out)


def _joins_previous(c: str) -> bool:
    """Whether `c` extends the grapheme cluster before it (UAX #29 GB9/GB9a: Extend, ZWJ, SpacingMark).

    The other cluster rules (Hangul syllables, flags, emoji ZWJ sequences) only ever build
    clusters of 6 bytes or more, which tokenizers maps character by character anyway.
    """
    if c in "\u200c\u200d\uff9e\uff9f\u0e33\u0eb3" or 0x1F3FB <= ord(c) <= 0x1F3FF or 0xE0020 <= ord(c) <= 0xE007F:
        return True
    return unicodedata.category(c) in ("Mn", "Me", "Mc")


def _is_control(c: str) -> bool:
    return c not in "\u200c\u200d" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")


def _graphemes(text: str) -> Iterator[str]:
    """Split text into grapheme clusters: a character plus the marks and joiners after it; CR LF."""
    start = 0
    for i in range(1, len(text)):
        prev, c = text[i - 1], text[i]
        if prev == "\r" and c == "\n":
            continue
        if _is_control(prev) or _is_control(c) or not _joins_previous(c):
            yield text[start:i]
            start = i
    if text:
        yield text[start:]


# ----- unigram segmentation


class _Unigram:
    """Best segmentation of one word under the unigram model, as the tokenizers library finds it.

    SentencePiece's encoder sums scores in float32 and so breaks exact ties (runs of dashes)
    differently; this Viterbi pass sums in float64 and, like tokenizers, keeps the first best path
    found: the one whose last piece starts earliest. Control pieces take part with their 0.0
    score, as in transformers. A run of unknown characters becomes one <unk>.
    """

    def __init__(self, pieces: list[str], scores: list[float]):
        self.ids = {p: i for i, p in enumerate(pieces)}
        self.scores = scores
        self.max_len = max(len(p) for p in pieces)
        self.unk_score = min(scores) - 10.0  # tokenizers' K_UNK_PENALTY
        self.segment = functools.lru_cache(maxsize=1 << 17)(self._segment)

    def _segment(self, word: str) -> tuple[tuple[int, str], ...]:
        """(id, surface) per token; the surface differs from the piece only for <unk>."""
        n = len(word)
        best = [0.0] + [float("-inf")] * n  # best score of a path covering word[:end]
        start_of = [-1] * (n + 1)  # where that path's last piece starts
        id_of = [UNK_ID] * (n + 1)
        for start in range(n):
            base = best[start]
            has_single_char = False
            for end in range(start + 1, min(n, start + self.max_len) + 1):
                i = self.ids.get(word[start:end])
                if i is None:
                    continue
                has_single_char = has_single_char or end == start + 1
                score = base + self.scores[i]
                if start_of[end] < 0 or score > best[end]:
                    best[end], start_of[end], id_of[end] = score, start, i
            if not has_single_char:
                score = base + self.unk_score
                if start_of[start + 1] < 0 or score > best[start + 1]:
                    best[start + 1], start_of[start + 1], id_of[start + 1] = score, start, UNK_ID
        tokens: list[tuple[int, str]] = []
        end = n
        while end > 0:
            start, i = start_of[end], id_of[end]
            if i == UNK_ID and tokens and tokens[-1][0] == UNK_ID:  # fuse a run of unknowns
                tokens[-1] = (UNK_ID, word[start:end] + tokens[-1][1])
            else:
                tokens.append((i, word[start:end]))
            end = start
        return tuple(reversed(tokens))


# ----- the tokenizer


class Tokenizer:
    """A loaded spiece.model plus ALBERT's text preprocessing."""

    def __init__(self, model_proto: bytes, *, do_lower_case: bool = True, keep_accents: bool = False,
                 source: str | Path = "<memory>"):
        self.do_lower_case = do_lower_case
        self.keep_accents = keep_accents
        self._proto = model_proto  # kept as read, so save() writes back the same file
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(model_proto)
            charsmap = _proto_field(_proto_field(model_proto, 3) or b"", 2)  # NormalizerSpec.precompiled_charsmap
            self._charsmap = _CharsMap(charsmap) if charsmap else None
        except Exception as e:
            raise AlbertError(f"{source}: not a SentencePiece model ({e})") from None
        self._pieces = [self._sp.IdToPiece(i) for i in range(self._sp.GetPieceSize())]
        if tuple(self._pieces[:len(SPECIAL_PIECES)]) != SPECIAL_PIECES:
            raise AlbertError(f"{source}: not an ALBERT vocabulary: ids 0-4 must be {', '.join(SPECIAL_PIECES)}, "
                              f"found {', '.join(self._pieces[:len(SPECIAL_PIECES)])}")
        scores = [self._sp.GetScore(i) - (_DIGIT_COMMA_PENALTY if _is_digit_comma(p) else 0.0)
                  for i, p in enumerate(self._pieces)]
        self._unigram = _Unigram(self._pieces, scores)

    def __getstate__(self) -> dict:  # picklable for DataLoader workers and datasets.map
        return {"model_proto": self._proto, "do_lower_case": self.do_lower_case, "keep_accents": self.keep_accents}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_proto"], do_lower_case=state["do_lower_case"], keep_accents=state["keep_accents"])

    @classmethod
    def load(cls, path: str | Path, *, do_lower_case: bool | None = None,
             keep_accents: bool | None = None) -> "Tokenizer":
        """Load `path`: a spiece.model, or a directory holding one and maybe tokenizer_config.json."""
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
        """The id of piece `p`, or UNK_ID if the vocabulary lacks it."""
        return self._unigram.ids.get(p, UNK_ID)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.id_to_piece(int(i)) for i in ids]

    def word_start_mask(self) -> np.ndarray:
        """True where a piece begins a word ("▁" prefix) or is special; whole-word masking uses it."""
        sp = self._sp
        return np.array([p.startswith(WORD_START) or sp.IsControl(i) or sp.IsUnknown(i) or sp.IsUnused(i)
                         for i, p in enumerate(self._pieces)], dtype=bool)

    # ----- text to ids

    def normalize(self, text: str) -> str:
        """Quotes, accents and case as ALBERT preprocesses them (see the module-level normalize())."""
        return normalize(text, do_lower_case=self.do_lower_case, keep_accents=self.keep_accents)

    def _tokens(self, text: str) -> Iterator[tuple[int, str]]:
        for segment in _SPECIALS.split(text):
            if segment in SPECIAL_PIECES:
                yield SPECIAL_PIECES.index(segment), segment
                continue
            segment = self.normalize(segment)
            if self._charsmap is not None:
                segment = self._charsmap(segment)
            for word in _WHITESPACE.split(segment):
                if not word:
                    continue
                if not word.startswith(WORD_START):
                    word = WORD_START + word
                for part in _BEFORE_WORD_START.split(word):
                    if part:
                        yield from self._unigram.segment(part)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without [CLS]/[SEP]."""
        return [i for i, _ in self._tokens(text)]

    def tokenize(self, text: str) -> list[str]:
        """Tokens as transformers' tokenize() shows them: pieces, and the covered text for <unk>."""
        return [surface for _, surface in self._tokens(text)]

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
        """Model inputs, as transformers' tokenizer(text, text_pair, truncation=True, max_length=...).

        Like transformers, an empty text_pair counts as no pair at all.
        """
        a = self.encode(text)
        b = self.encode(text_pair) if text_pair else None
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


def _is_digit_comma(piece: str) -> bool:
    return len(piece) >= 2 and piece[-1] == "," and piece[-2].isdigit()


def _truncate_longest_first(a: list[int], b: list[int] | None, max_length: int) -> tuple[list[int], list[int] | None]:
    """transformers' `truncation=True` (longest_first), as the tokenizers library computes it."""
    specials = 2 if b is None else 3
    if max_length < specials:
        raise AlbertError(f"max_length={max_length} leaves no room for the {specials} special tokens")
    room = max_length - specials
    if b is None:
        return a[:room], None
    if len(a) + len(b) <= room:
        return a, b
    short, long_ = sorted((len(a), len(b)))
    long_ = short if short > room else max(short, room - short)
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
    """Train a unigram SentencePiece model the way ALBERT's was, save it in out_dir, and load it.

    Lines are normalized (lower-cased, accents stripped) by the same code that encodes, so the
    vocabulary is built from what the model will later see. ALBERT's layout: <pad>=0, <unk>=1,
    control symbols [CLS]=2 [SEP]=3 [MASK]=4, no BOS/EOS.
    """
    if vocab_size <= len(SPECIAL_PIECES):
        raise AlbertError(f"--vocab-size {vocab_size} is too small: ALBERT has {len(SPECIAL_PIECES)} special pieces")
    lines = (line for line in (normalize(t) for t in texts) if line.strip())
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
        if "Vocabulary size too high" in str(e):
            raise AlbertError(f"the text cannot support a vocabulary of {vocab_size} pieces ({e}); "
                              f"use a smaller --vocab-size or more text") from None
        if "smaller than required_chars" in str(e):
            raise AlbertError(f"--vocab-size {vocab_size} cannot even hold every character of the text ({e}); "
                              f"use a larger --vocab-size") from None
        raise AlbertError(f"SentencePiece training failed: {e}") from None
    out_dir = Path(out_dir)
    tokenizer = Tokenizer(model.getvalue(), source=out_dir / MODEL_FILE)
    tokenizer.save(out_dir)
    return tokenizer
