"""Ranking metrics against pytrec_eval (trec_eval) on runs with ties and graded judgements."""

from __future__ import annotations

import random

import numpy as np
import pytest

from photopoet.metrics.retrieval import evaluate_run, query_metrics, ranked_metrics, trec_order

pytrec_eval = pytest.importorskip("pytrec_eval")

KS = (1, 3, 5, 10)


def trec(run: dict, qrels: dict, ks=KS) -> dict[str, dict[str, float]]:
    """pytrec_eval's per-query values under our names; MRR@k from recip_rank on the run cut at k."""
    cuts = ",".join(map(str, ks))
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", f"ndcg_cut.{cuts}", f"recall.{cuts}", f"P.{cuts}"})
    res = ev.evaluate(run)
    out = {q: {"map": m["map"]} for q, m in res.items()}
    for k in ks:
        for q, m in res.items():
            out[q].update({f"ndcg@{k}": m[f"ndcg_cut_{k}"], f"recall@{k}": m[f"recall_{k}"], f"p@{k}": m[f"P_{k}"]})
        cut = {q: {d: run[q][d] for d in trec_order(run[q])[:k]} for q in run}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        for q, m in rr.items():
            out[q][f"mrr@{k}"] = m["recip_rank"]
    return out


def assert_same(run: dict, qrels: dict) -> dict:
    ours = evaluate_run(run, qrels, KS)
    theirs = trec(run, qrels)
    assert set(theirs) == set(qrels)
    for q, m in theirs.items():
        for k, v in m.items():
            assert ours["per_query"][q][k] == pytest.approx(v, abs=1e-9), (q, k)
    return ours


def test_random_runs_with_ties_and_graded_relevance() -> None:
    rng = random.Random(3)
    docs = [f"d{i:03d}" for i in range(60)]
    run, qrels = {}, {}
    for qi in range(40):
        q = f"q{qi}"
        # scores rounded to one decimal: many ties, which trec_eval breaks by document id
        run[q] = {d: round(rng.random(), 1) for d in rng.sample(docs, rng.randint(3, 30))}
        qrels[q] = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 8))}
    qrels["q0"] = {d: 0 for d in docs[:3]}  # judged, nothing relevant
    ours = assert_same(run, qrels)
    assert 0 < ours["ndcg@10"] < 1 and ours["n"] == 40 and ours["missing"] == []


def test_ties_follow_trec_eval_order() -> None:
    assert trec_order({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5, "y": 2.0}) == ["y", "c", "b", "a", "z"]
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    qrels = {"q": {"a": 1}}
    ours = assert_same(run, qrels)
    assert ours["mrr@3"] == pytest.approx(1 / 3) and ours["mrr@1"] == 0.0


def test_poem_benchmark_style_pairs() -> None:
    """Dense retrieval as benchmarks/poem_eval.py runs it: one right line per query among cosine scores."""
    rng = np.random.default_rng(0)
    lines = rng.normal(size=(200, 16))
    queries = lines[:50] + rng.normal(scale=1.2, size=(50, 16))
    sims = queries @ lines.T
    run = {f"q{i}": {f"l{j:03d}": float(s) for j, s in enumerate(row)} for i, row in enumerate(sims)}
    qrels = {f"q{i}": {f"l{i:03d}": 1} for i in range(50)}
    ours = assert_same(run, qrels)
    # with one relevant line, the list form gives the same numbers
    order = [[f"l{j:03d}" for j in np.argsort(-row, kind="stable")] for row in sims]
    listed = ranked_metrics(order, [{f"l{i:03d}"} for i in range(50)], KS)
    for k in ("ndcg@5", "mrr@5", "recall@5", "map"):
        assert listed[k] == pytest.approx(ours[k])
    assert 0 < ours["mrr@5"] < 1


def test_by_hand_and_missing_queries() -> None:
    m = query_metrics(["x", "a", "y", "b"], {"a": 1, "b": 2, "c": 1}, ks=(2, 4))
    assert m["p@2"] == 0.5 and m["recall@4"] == pytest.approx(2 / 3) and m["mrr@2"] == 0.5
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / np.log2(3) + 2 / np.log2(5)
    idcg = 2 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["ndcg@4"] == pytest.approx(dcg / idcg)
    res = evaluate_run({"q1": ["a"]}, {"q1": {"a"}, "q2": {"b"}}, ks=(1,))
    assert res["missing"] == ["q2"] and res["ndcg@1"] == 0.5 and res["per_query"]["q2"]["map"] == 0.0
    with pytest.raises(ValueError, match="2 rankings but 1"):
        ranked_metrics([["a"], ["b"]], [{"a"}])
