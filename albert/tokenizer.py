"""ALBERT's SentencePiece tokenizer, built from the same parts as transformers' `AlbertTokenizer`.

SentencePiece trains the vocabulary (`train_tokenizer`); the HF `tokenizers` library, which
transformers v5's AlbertTokenizer runs on, segments text. This module assembles the pipeline that
transformers assembles from a spiece.model, part for part:
  special tokens   <pad> <unk> [CLS] [SEP] [MASK] are cut out of the raw text first;
  normalizer       `` and '' -> ", NFKD + StripAccents (unless keep_accents), Lowercase (if
                   do_lower_case), then the model's own nmt_nfkc table (`Precompiled`);
  pre-tokenizer    split on whitespace, then before every "▁"; each word starts with "▁";
  model            Unigram over the vocabulary's pieces and scores, <unk> = 1;
  decoder          Metaspace ("▁" -> space).
`save()` writes this pipeline as tokenizer.json beside spiece.model and tokenizer_config.json, so
`AlbertTokenizer.from_pretrained(dir)` reads the same vocabulary, scores and settings back.

Scores: a directory's tokenizer.json, when it has one, supplies the pieces' scores and the
normalization table, as it does for transformers; otherwise spiece.model does, unchanged.

Digit-comma rule: none. A piece such as "▁2008," is used wherever the vocabulary's scores choose
it, so "in 2008, the" may encode as "▁in ▁2008, ▁the". This is what transformers v5 does with a
spiece.model (and what SentencePiece does). The original ALBERT/XLNet code split such pieces into
"▁2008" + ",", and transformers' converter for the published checkpoints imitates that by taking
100 from their scores inside their tokenizer.json; loading such a tokenizer.json here uses those
scores as they are, so ids stay equal to transformers' for every directory.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import sentencepiece as spm
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Pipeline
from tokenizers.models import Unigram

from .atomic import atomic_write, read_json_object, write_json
from .errors import AlbertError

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_PIECES = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
MODEL_FILE = "spiece.model"
PIPELINE_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
WORD_START = "\u2581"  # "▁", SentencePiece's word-start marker
# Whole-word masking's word starts, as google-research/albert's `_is_start_piece_sp`: besides "▁"
# pieces, a piece of one punctuation character, or one holding anything but ASCII letters and
# punctuation (digits, other scripts), starts a word of its own.
_PUNCTUATION = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_LETTERS_AND_PUNCTUATION = frozenset("abcdefghijklmnopqrstuvwxyz") | _PUNCTUATION


def starts_word(piece: str) -> bool:
    """Whether a (non-special) piece begins a word for whole-word masking (see _PUNCTUATION)."""
    return (piece.startswith((WORD_START, "<")) or piece in _PUNCTUATION
            or not all(c.lower() in _LETTERS_AND_PUNCTUATION for c in piece))


def _preprocessing(do_lower_case: bool, keep_accents: bool) -> list[normalizers.Normalizer]:
    """ALBERT's steps before the model's own table, in transformers' order."""
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not keep_accents:
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if do_lower_case:
        steps.append(normalizers.Lowercase())
    return steps


@functools.lru_cache(maxsize=None)
def _preprocessor(do_lower_case: bool, keep_accents: bool) -> normalizers.Normalizer:
    return normalizers.Sequence(_preprocessing(do_lower_case, keep_accents))


def normalize(text: str, *, do_lower_case: bool = True, keep_accents: bool = False) -> str:
    """Quotes, accents and case as ALBERT preprocesses them (the pipeline's first normalizers)."""
    return _preprocessor(do_lower_case, keep_accents).normalize_str(text)


def _pipeline(vocab: list[tuple[str, float]], charsmap: bytes | None, *, do_lower_case: bool,
              keep_accents: bool) -> Pipeline:
    pipeline = Pipeline(Unigram(vocab, unk_id=UNK_ID, byte_fallback=False))
    steps = _preprocessing(do_lower_case, keep_accents)
    if charsmap:
        steps.append(normalizers.Precompiled(charsmap))
    pipeline.normalizer = normalizers.Sequence(steps)
    pipeline.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")])
    pipeline.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    pipeline.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)])
    pipeline.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in SPECIAL_PIECES])
    return pipeline


# ----- reading spiece.model and tokenizer.json


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

    Enough of the wire format to fetch the normalization table out of a ModelProto: sentencepiece's
    Python API does not expose it, and the protobuf package is not a dependency.
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


def _from_pipeline_file(text: str, pieces: list[str], source: str | Path) -> tuple[list[tuple[str, float]], bytes | None]:
    """Scores and normalization table of a tokenizer.json, as transformers' AlbertTokenizer takes them."""
    try:
        data = json.loads(text)
        model = data["model"]
        if model.get("type") != "Unigram":
            raise ValueError(f"a {model.get('type')} model, not Unigram")
        vocab = [(str(p), float(s)) for p, s in model["vocab"]]
        steps = data.get("normalizer") or {}
        steps = steps.get("normalizers", [steps]) if isinstance(steps, dict) else steps
        table = next((n["precompiled_charsmap"] for n in steps if n.get("type") == "Precompiled"), None)
        charsmap = base64.b64decode(table, validate=True) if table else None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise AlbertError(f"{source}: not a Unigram tokenizer.json ({e})") from None
    if [p for p, _ in vocab] != pieces:
        raise AlbertError(f"{source}: its vocabulary differs from the {MODEL_FILE} beside it")
    return vocab, charsmap


# ----- the tokenizer


class Tokenizer:
    """A spiece.model run through the tokenizers pipeline transformers' AlbertTokenizer builds.

    `pipeline_json` is the text of a tokenizer.json whose scores and normalization table replace
    the spiece.model's (a published checkpoint's); its pieces must be the model's. Errors name
    `source`, the spiece.model's path, or the tokenizer.json beside it.
    """

    def __init__(self, model_proto: bytes, *, do_lower_case: bool = True, keep_accents: bool = False,
                 source: str | Path = "<memory>", pipeline_json: str | None = None):
        self.do_lower_case = do_lower_case
        self.keep_accents = keep_accents
        self._proto = model_proto  # kept as read, so save() writes back the same file
        self._pipeline_json = pipeline_json
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(model_proto)
            charsmap = _proto_field(_proto_field(model_proto, 3) or b"", 2)  # NormalizerSpec.precompiled_charsmap
        except Exception as e:
            raise AlbertError(f"{source}: not a SentencePiece model ({e})") from None
        self._pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
        if tuple(self._pieces[:len(SPECIAL_PIECES)]) != SPECIAL_PIECES:
            raise AlbertError(f"{source}: not an ALBERT vocabulary: ids 0-4 must be {', '.join(SPECIAL_PIECES)}, "
                              f"found {', '.join(self._pieces[:len(SPECIAL_PIECES)])}")
        self._special = [sp.IsControl(i) or sp.IsUnknown(i) or sp.IsUnused(i) for i in range(len(self._pieces))]
        if pipeline_json is None:
            vocab = [(p, sp.GetScore(i)) for i, p in enumerate(self._pieces)]
        else:
            vocab, charsmap = _from_pipeline_file(pipeline_json, self._pieces, Path(source).with_name(PIPELINE_FILE))
        self._backend = _pipeline(vocab, charsmap, do_lower_case=do_lower_case, keep_accents=keep_accents)
        self._json = self._backend.to_str()
        self._truncator: Pipeline | None = None
        self._truncator_length = 0

    def __getstate__(self) -> dict:  # picklable for DataLoader workers and datasets.map
        return {"model_proto": self._proto, "do_lower_case": self.do_lower_case, "keep_accents": self.keep_accents,
                "pipeline_json": self._pipeline_json}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_proto"], do_lower_case=state["do_lower_case"], keep_accents=state["keep_accents"],
                      pipeline_json=state.get("pipeline_json"))

    @classmethod
    def load(cls, path: str | Path, *, do_lower_case: bool | None = None,
             keep_accents: bool | None = None) -> "Tokenizer":
        """Load `path`: a spiece.model, or a directory holding one, maybe with tokenizer.json and
        tokenizer_config.json beside it (read as transformers reads them)."""
        path = Path(path)
        model_file = path / MODEL_FILE if path.is_dir() else path
        try:
            proto = model_file.read_bytes()
        except OSError as e:
            raise AlbertError(f"{model_file}: cannot read the SentencePiece model ({e.strerror or e})") from None
        pipeline_file = model_file.parent / PIPELINE_FILE
        try:
            pipeline_json = pipeline_file.read_text(encoding="utf-8") if pipeline_file.is_file() else None
        except (OSError, UnicodeDecodeError) as e:
            raise AlbertError(f"{pipeline_file}: cannot read ({e})") from None
        config_file = model_file.parent / CONFIG_FILE
        settings = read_json_object(config_file) if config_file.is_file() else {}
        if do_lower_case is None:
            do_lower_case = bool(settings.get("do_lower_case", True))
        if keep_accents is None:
            keep_accents = bool(settings.get("keep_accents", False))
        return cls(proto, do_lower_case=do_lower_case, keep_accents=keep_accents, source=model_file,
                   pipeline_json=pipeline_json)

    def save(self, directory: str | Path) -> None:
        """Write spiece.model, tokenizer.json (this pipeline) and the tokenizer_config.json that
        tells transformers' AutoTokenizer the class and the case and accent settings."""
        directory = Path(directory)
        with atomic_write(directory / MODEL_FILE, "wb") as f:
            f.write(self._proto)
        with atomic_write(directory / PIPELINE_FILE) as f:
            f.write(self._json)
        write_json(directory / CONFIG_FILE, {
            "tokenizer_class": "AlbertTokenizer",
            "do_lower_case": self.do_lower_case,
            "keep_accents": self.keep_accents,
        })

    def fingerprint(self) -> str:
        """A hash of everything that decides the ids: pieces, scores, normalization, settings."""
        return hashlib.sha256(self._json.encode("utf-8")).hexdigest()

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
        i = self._backend.token_to_id(p)
        return UNK_ID if i is None else i

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.id_to_piece(int(i)) for i in ids]

    def word_start_mask(self) -> np.ndarray:
        """True where a piece begins a word; whole-word masking uses it. A word starts at a "▁"
        piece, a special piece, a lone punctuation piece, or a piece with characters other than
        ASCII letters and punctuation (the reference's rule: so "," and "." are masked on their
        own, not only together with the word they follow)."""
        return np.array([special or starts_word(p) for p, special in zip(self._pieces, self._special)], dtype=bool)

    # ----- text to ids

    def normalize(self, text: str) -> str:
        """Quotes, accents and case as ALBERT preprocesses them (see the module-level normalize())."""
        return normalize(text, do_lower_case=self.do_lower_case, keep_accents=self.keep_accents)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without [CLS]/[SEP]."""
        return self._backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """encode() of each text, in parallel threads (TOKENIZERS_PARALLELISM=false turns them off)."""
        return [e.ids for e in self._backend.encode_batch(texts, add_special_tokens=False)]

    def tokenize(self, text: str) -> list[str]:
        """Tokens as transformers' tokenize() shows them."""
        return self._backend.encode(text, add_special_tokens=False).tokens

    def encode_words(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Ids of pre-split words and, for each id, the index of its word (NER, SQuAD)."""
        if not words:
            return [], []
        encoding = self._backend.encode(words, is_pretokenized=True, add_special_tokens=False)
        return encoding.ids, encoding.word_ids

    def build_inputs(self, a: list[int], b: list[int] | None = None) -> tuple[list[int], list[int]]:
        """[CLS] a [SEP] (b [SEP]) and its token types."""
        input_ids = [CLS_ID, *a, SEP_ID]
        token_type_ids = [0] * len(input_ids)
        if b is not None:
            input_ids += [*b, SEP_ID]
            token_type_ids += [1] * (len(b) + 1)
        return input_ids, token_type_ids

    def __call__(self, text: str, text_pair: str | None = None,
                 max_length: int | None = None) -> dict[str, list[int]]:
        """Model inputs, as transformers' tokenizer(text, text_pair, truncation=True, max_length=...).

        Truncation is tokenizers' longest-first; like transformers, an empty text_pair is no pair.
        A max_length with no room for the special tokens is refused (transformers would warn and
        not truncate at all).
        """
        pair = text_pair or None
        backend = self._backend
        if max_length is not None:
            specials = 2 if pair is None else 3
            if max_length < specials:
                raise AlbertError(f"max_length={max_length} leaves no room for the {specials} special tokens")
            backend = self._truncating(max_length)
        encoding = backend.encode(text, pair)
        return {"input_ids": encoding.ids, "token_type_ids": encoding.type_ids,
                "attention_mask": encoding.attention_mask}

    def _truncating(self, max_length: int) -> Pipeline:
        """A second copy of the pipeline that truncates: tokenizers keeps truncation as state,
        which encode() and encode_words() must never see."""
        if self._truncator is None:
            self._truncator = Pipeline.from_str(self._json)
        if self._truncator_length != max_length:
            self._truncator.enable_truncation(max_length)
            self._truncator_length = max_length
        return self._truncator

    # ----- ids to text

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids` as transformers' decode() gives it: "▁" becomes a space, the first one dropped."""
        return self._backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)


# ----- training


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 30000, *,
                    sample_size: int = 1_000_000, character_coverage: float = 0.99995, seed: int = 0,
                    num_threads: int = 2) -> Tokenizer:
    """Train a unigram SentencePiece model the way ALBERT's was, save it in out_dir, and load it.

    Lines are normalized (lower-cased, accents stripped) by the normalizers that encode, so the
    vocabulary is built from what the model will later see. ALBERT's layout: <pad>=0, <unk>=1,
    control symbols [CLS]=2 [SEP]=3 [MASK]=4, no BOS/EOS.
    """
    if vocab_size <= len(SPECIAL_PIECES):
        raise AlbertError(f"--vocab-size {vocab_size} is too small: ALBERT has {len(SPECIAL_PIECES)} special pieces")
    lines = (line for line in map(normalize, texts) if line.strip())
    first = next(lines, None)
    if first is None:
        raise AlbertError("cannot train a tokenizer: the input text is empty")

    def sentences() -> Iterator[str]:
        yield first
        yield from lines

    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        _interruptible(lambda: spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(), model_writer=model, model_type="unigram", vocab_size=vocab_size,
            character_coverage=character_coverage, input_sentence_size=sample_size, shuffle_input_sentence=True,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1, pad_piece="<pad>", unk_piece="<unk>",
            control_symbols=list(SPECIAL_PIECES[CLS_ID:]), num_threads=num_threads, minloglevel=2,
        ))
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


def _interruptible(fn: Callable[[], Any]) -> Any:
    """fn() in a daemon thread while this one waits in short joins. Python runs a signal's
    handler in the main thread between bytecodes, so a Ctrl-C during a minutes-long C++ call
    (SentencePiece's training) would wait for the call to return; here it interrupts at once,
    and the abandoned thread ends with the process."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name="sentencepiece", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
