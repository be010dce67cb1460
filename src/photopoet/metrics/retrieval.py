"""Ranking metrics as ``trec_eval`` (and so ``pytrec_eval``) computes them: NDCG@k, MRR@k, MAP, Recall@k, P@k.

Checked in the tests against ``pytrec_eval`` on runs with ties and graded relevance. Definitions, per query
(``rel`` is the judged relevance; a document counts as relevant when ``rel >= 1``, trec_eval's default
relevance level; unjudged documents are not relevant):

- the ranking: documents by score, highest first; **ties broken by document id, in descending string
  order**, as trec_eval does (so a run with ties gives the same numbers here and there);
- ``ndcg@k`` (trec_eval ``ndcg_cut_k``): sum of ``rel / log2(rank + 1)`` over the top k, divided by the same
  sum for the judged documents in the best order (gain = the relevance value itself, not ``2^rel - 1``);
- ``mrr@k``: ``1 / rank`` of the first relevant document within the top k, else 0 (trec_eval
  ``recip_rank`` on the run cut at k);
- ``map`` (trec_eval ``map``): mean over the relevant documents of the precision at their ranks, over the
  whole ranking, divided by the number of relevant documents;
- ``recall@k``: relevant documents in the top k / relevant documents judged;
- ``p@k``: relevant documents in the top k / k (k, even when fewer documents were retrieved).

A query with no relevant document scores 0 everywhere (as in trec_eval). Means are over the queries of the
judgements; a judged query the run does not hold counts as 0 (trec_eval ``-c``) and is listed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

DEFAULT_KS = (1, 5, 10)


def trec_order(scores: Mapping[str, float]) -> list[str]:
    """Document ids by score, highest first; ties by document id, descending (trec_eval's order)."""
    docs = sorted(scores, reverse=True)  # id descending ...
    return sorted(docs, key=lambda d: -float(scores[d]))  # ... then by score; sorted() is stable


def query_metrics(
    ranking: Sequence[Hashable], judged: Mapping[Hashable, int] | Iterable[Hashable], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Metrics of one ranked list (best first) against its judgements (``{doc: rel}``, or a set of relevant
    documents, each ``rel`` 1)."""
    rel = dict(judged) if isinstance(judged, Mapping) else dict.fromkeys(judged, 1)
    n_rel = sum(1 for r in rel.values() if r >= 1)
    ideal = sorted((max(r, 0) for r in rel.values() if r > 0), reverse=True)
    gains = [max(rel.get(d, 0), 0) for d in ranking]
    hits = [g >= 1 for g in gains]
    out: dict[str, float] = {}
    for k in ks:
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]) if g)
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal[:k]))
        out[f"ndcg@{k}"] = dcg / idcg if idcg > 0 else 0.0
        first = next((i for i, h in enumerate(hits[:k]) if h), None)
        out[f"mrr@{k}"] = 1.0 / (first + 1) if first is not None else 0.0
        found = sum(hits[:k])
        out[f"recall@{k}"] = found / n_rel if n_rel else 0.0
        out[f"p@{k}"] = found / k
    ap, seen = 0.0, 0
    for i, h in enumerate(hits):
        if h:
            seen += 1
            ap += seen / (i + 1)
    out["map"] = ap / n_rel if n_rel else 0.0
    return out


def evaluate_run(
    run: Mapping[str, Mapping[str, float] | Sequence[str]],
    qrels: Mapping[str, Mapping[str, int] | Iterable[str]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Any]:
    """Mean metrics over the judged queries, plus ``per_query``, ``n``, ``missing`` (judged queries without a
    run, scored 0) and ``primary``. A query's run is ``{doc: score}`` (ranked by :func:`trec_order`) or a list of
    document ids, best first."""
    per: dict[str, dict[str, float]] = {}
    missing = []
    for q, judged in qrels.items():
        r = run.get(q)
        if r is None:
            missing.append(q)
            ranking: Sequence[Hashable] = []
        else:
            ranking = trec_order(r) if isinstance(r, Mapping) else list(r)
        per[q] = query_metrics(ranking, judged, ks)
    if not per:
        raise ValueError("no judged query to evaluate")
    keys = next(iter(per.values())).keys()
    out: dict[str, Any] = {k: sum(m[k] for m in per.values()) / len(per) for k in keys}
    out.update({"n": len(per), "missing": missing, "per_query": per, "primary": f"ndcg@{max(ks)}"})
    return out


def ranked_metrics(
    rankings: Sequence[Sequence[Hashable]],
    relevant: Sequence[Mapping[Hashable, int] | Iterable[Hashable]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean :func:`query_metrics` over queries given as parallel lists (rankings best first)."""
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} judgement sets")
    if not rankings:
        raise ValueError("no query to evaluate")
    per = [query_metrics(r, j, ks) for r, j in zip(rankings, relevant, strict=True)]
    return {k: sum(m[k] for m in per) / len(per) for k in per[0]}
