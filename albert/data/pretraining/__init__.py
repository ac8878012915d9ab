"""ALBERT pretraining data, in three steps:

- `pairing`: sentence-order-prediction pairs from a corpus, built once and cached on disk;
- `masking`: n-gram whole-word masking, afresh every epoch, a pure function of
  (seed, epoch, example index);
- `collation`: masked rows padded into batches of few shapes, with fixed-size masked positions.
"""
from .collation import IndexedExamples, pretraining_collate
from .masking import IGNORE_INDEX, SPECIAL_IDS, MaskedRows, MaskedTokens, NgramMasker
from .pairing import SopExampleBuilder, build_pretraining_dataset, tokenize_document

__all__ = ["IGNORE_INDEX", "SPECIAL_IDS", "IndexedExamples", "MaskedRows", "MaskedTokens", "NgramMasker",
           "SopExampleBuilder", "build_pretraining_dataset", "pretraining_collate", "tokenize_document"]
