"""Fixtures of the pretraining-data tests: a vocabulary and examples built from real Wikipedia text."""
from __future__ import annotations

import itertools

import pytest
from wiki_data import DATA, N_DOCS, SEQ

from albert.data.corpus import resolve_corpus
from albert.data.pretraining import NgramMasker, build_pretraining_dataset, tokenize_document
from albert.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def corpus():
    return resolve_corpus("wiki", DATA)


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory):
    texts = itertools.chain.from_iterable(corpus.paragraphs("valid"))
    return train_tokenizer(itertools.islice(texts, 2000), tmp_path_factory.mktemp("spm"), vocab_size=3000)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sop-cache")


@pytest.fixture(scope="session")
def dataset(corpus, tokenizer, cache_dir):
    return build_pretraining_dataset(corpus, tokenizer, "valid", SEQ, cache_dir, max_docs=N_DOCS, seed=0)


@pytest.fixture(scope="session")
def rows(dataset):
    return dataset[:]


@pytest.fixture(scope="session")
def token_docs(corpus, tokenizer):
    return [tokenize_document(tokenizer, d) for d in corpus.documents("valid", max_docs=60)]


@pytest.fixture(scope="session")
def masker(tokenizer):
    return NgramMasker.from_tokenizer(tokenizer, seed=7)
