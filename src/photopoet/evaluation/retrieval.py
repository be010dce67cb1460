"""A ranked run against relevance judgements (trec_eval's metrics, :mod:`photopoet.metrics.retrieval`) as an
:class:`~photopoet.evaluation.base.EvalResult`: primary NDCG at the largest cut-off, greater is better."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from photopoet.evaluation.base import EvalResult
from photopoet.metrics.retrieval import DEFAULT_KS, evaluate_run


@dataclass(kw_only=True)
class RetrievalEval(EvalResult):
    """Mean NDCG@k, MRR@k, Recall@k, P@k and MAP over the judged queries (``metrics``), with each query's own
    (``per_query``) and the judged queries the run does not hold (``missing``, scored 0)."""

    n: int
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def evaluate_retrieval(
    run: Mapping[str, Mapping[str, float] | Sequence[str]],
    qrels: Mapping[str, Mapping[str, int] | Iterable[str]],
    ks: Sequence[int] = DEFAULT_KS,
) -> RetrievalEval:
    """:func:`photopoet.metrics.retrieval.evaluate_run` of `run` against `qrels`, typed."""
    res: dict[str, Any] = evaluate_run(run, qrels, ks)
    per, missing, n, primary = res.pop("per_query"), res.pop("missing"), res.pop("n"), res["primary"]
    return RetrievalEval(metrics=res, primary_metric=primary, n=n, per_query=per, missing=missing)
