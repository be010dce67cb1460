"""The lexical (BM25) index over poem lines, reciprocal-rank fusion, and the hybrid path of the reranker."""

from __future__ import annotations

import numpy as np
import pytest
from poem_fakes import POEMS

from photopoet.config import load_config
from photopoet.errors import LexicalIndexError
from photopoet.poetry.index import PoemIndex, build_index
from photopoet.poetry.lexical import LEXICAL_DIR, LexicalIndex, ranks_of, reciprocal_rank_fusion, terms, top_k
from photopoet.poetry.select import fuse, rerank

LINES = [
    "床前明月光，疑是地上霜。",
    "举头望明月，低头思故乡。",
    "白日依山尽，黄河入海流。",
    "千山鸟飞绝，万径人踪灭。",
    "孤舟蓑笠翁，独钓寒江雪。",
    "春眠不觉晓，处处闻啼鸟。",
]


def test_terms_are_characters_and_bigrams_within_a_clause():
    assert terms("明月光，疑霜。") == ["明", "明月", "月", "月光", "光", "疑", "疑霜", "霜"]  # no 光疑 across the comma
    assert terms("舉頭") == ["举", "举头", "头"]  # traditional characters are simplified
    assert terms("a cup of coffee") == []


def test_query_terms_leave_out_function_characters():
    assert terms("月亮的光", query=True) == ["月", "月亮", "亮", "光"]  # 的 and the bigrams 亮的, 的光 go
    assert "的" in terms("月亮的光")  # lines keep every character


def test_bm25_finds_the_line_an_explanation_paraphrases():
    ix = LexicalIndex.build(LINES)
    scores, ids = ix.search("抬起头来望着天上的明月，低下头来思念故乡", 3)
    assert ids[0] == 1 and scores[0] > scores[1] > 0
    assert np.all(np.diff(scores) <= 0)
    _, ids = ix.search("江上下雪，一个老翁独自钓鱼", 1)
    assert list(ids) == [4]


def test_a_query_without_shared_characters_finds_nothing():
    ix = LexicalIndex.build(LINES)
    s, ids = ix.search("咖啡", 5)
    assert len(ids) == 0 and len(s) == 0
    assert not ix.scores("coffee").any()


def test_save_and_load_give_the_same_scores(tmp_path):
    ix = LexicalIndex.build(LINES)
    ix.save(tmp_path / "lex")
    back = LexicalIndex.load(tmp_path / "lex", len(LINES))
    q = "明亮的月光照在床前"
    np.testing.assert_allclose(back.scores(q), ix.scores(q), rtol=1e-6)


def test_loading_an_index_of_other_lines_names_the_folder(tmp_path):
    LexicalIndex.build(LINES).save(tmp_path / "lex")
    with pytest.raises(LexicalIndexError, match=r"lex.*over 6 lines, expected version 1 over 7"):
        LexicalIndex.load(tmp_path / "lex", 7)
    with pytest.raises(LexicalIndexError, match="not a photopoet lexical index"):
        LexicalIndex.load(tmp_path / "missing", 6)


def test_top_k_keeps_positive_scores_best_first_ties_by_id():
    s, ids = top_k(np.asarray([0.0, 2.0, 1.0, 2.0, -1.0]), 4)
    assert list(ids) == [1, 3, 2] and list(s) == [2.0, 2.0, 1.0]


def test_ranks_share_the_better_rank_on_ties():
    assert list(ranks_of(np.asarray([0.3, 0.9, 0.3, 0.1]))) == [2, 1, 2, 4]


def test_reciprocal_rank_fusion_by_hand():
    dense = np.asarray([1, 2, 3])
    lex = np.asarray([0, 1, 2])  # line 0 is absent from the lexical ranking
    f = reciprocal_rank_fusion([dense, lex], [1.0, 2.0], k=60, normalise=False)
    np.testing.assert_allclose(f, [1 / 61, 1 / 62 + 2 / 61, 1 / 63 + 2 / 62])
    n = reciprocal_rank_fusion([dense, lex], [1.0, 2.0], k=60)
    np.testing.assert_allclose(n, f / (3 / 61))
    assert reciprocal_rank_fusion([np.asarray([1]), np.asarray([1])], [1.0, 1.0])[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        reciprocal_rank_fusion([dense, lex], [1.0])


def test_fuse_ranks_a_line_both_rankings_like_first():
    dense = np.asarray([0.90, 0.88, 0.70])  # line 0 first by cosine
    bm25 = np.asarray([0.0, 5.0, 1.0])  # line 1 first by BM25, line 0 shares no character
    f = fuse(dense, bm25, 1.0, 60)
    assert np.argmax(f) == 1 and f[1] < 1.0
    assert fuse(dense, bm25, 0.0, 60)[0] == pytest.approx(1.0)  # BM25 weight 0: the dense ranking alone


def test_build_index_writes_the_lexical_index(index_dir):  # noqa: F811
    ix = PoemIndex(index_dir)
    assert (index_dir / LEXICAL_DIR).is_dir()
    s = ix.lexical.scores("举头望着明月")
    assert ix.simplified[int(np.argmax(s))] == "举头望明月，低头思故乡。"


def test_an_index_without_a_lexical_folder_builds_one_in_memory(tmp_path, index_dir):  # noqa: F811
    import shutil

    copy = tmp_path / "ix"
    shutil.copytree(index_dir, copy)
    shutil.rmtree(copy / LEXICAL_DIR)
    ix = PoemIndex(copy)
    np.testing.assert_allclose(ix.lexical.scores("明月"), PoemIndex(index_dir).lexical.scores("明月"), rtol=1e-6)


def test_hybrid_rerank_adds_lexical_candidates_and_the_fusion_term(tmp_path, encoder):  # noqa: F811
    from poem_fakes import write_jsonl

    from photopoet.poetry.corpus import load_jsonl

    res = load_jsonl(write_jsonl(tmp_path / "p.jsonl", POEMS))
    build_index(res.poems, tmp_path / "ix", encoder, progress=False)
    ix = PoemIndex(tmp_path / "ix")
    q = "江上下雪，一个老翁独自钓鱼"
    v = encoder.encode([q], kind="query")[0]
    on = load_config(overrides={"poem": {"fusion_weight": 0.5}}).poem
    off = load_config(overrides={"poem": {"fusion_weight": 0.0}}).poem
    # one dense candidate only: the lexical list brings the right line into the pool
    cands = rerank(ix, on, None, v, q, k=1)
    texts = [ix.simplified[c.line_id] for c in cands]
    assert "孤舟蓑笠翁，独钓寒江雪。" in texts
    best = cands[0]
    assert ix.simplified[best.line_id] == "孤舟蓑笠翁，独钓寒江雪。" and best.fused > 0.5
    plain = {c.line_id: c for c in rerank(ix, off, None, v, q, k=50)}
    fused = {c.line_id: c for c in rerank(ix, on, None, v, q, k=50)}
    assert fused[best.line_id].score == pytest.approx(plain[best.line_id].score + 0.5 * best.fused, abs=1e-6)
    assert all(c.fused == 0.0 for c in plain.values())
    # English words have no characters to match: no fusion term, the same ranking as before
    e = "snow on the river, an old fisherman alone"
    ve = encoder.encode([e], kind="query")[0]
    a = [(c.line_id, c.score) for c in rerank(ix, on, None, ve, e)]
    b = [(c.line_id, c.score) for c in rerank(ix, off, None, ve, e)]
    assert a == b
