"""One contract for every evaluation: its metrics, the one metric that ranks methods, and which way is better.

As in sentence-transformers' evaluators (``primary_metric``, ``greater_is_better``), each evaluation here
returns an :class:`EvalResult` (a subclass adds what is particular to it: the baseline of the grouping, the
confusion table of the dedupe scoring, the per-item scores of the text metrics):

========================================================  ================  =================
evaluation                                                primary metric    greater is better
========================================================  ================  =================
grouping (:mod:`photopoet.evaluation.grouping`)           ``ari``           yes
dedupe (:mod:`photopoet.evaluation.dedupe`)               ``f1_duplicate``  yes
text (:mod:`photopoet.evaluation.text`)                   ``cider``         yes
retrieval (:mod:`photopoet.evaluation.retrieval`)         ``ndcg@K``        yes
========================================================  ================  =================

The metric functions below (:mod:`photopoet.metrics`) return plain dicts; where a dict names its primary metric
(``"primary"``) it is the one the evaluation reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(kw_only=True)
class EvalResult:
    """An evaluation's metrics (``name -> value``), the name of the primary one and its direction."""

    metrics: dict[str, Any]
    primary_metric: str
    greater_is_better: bool = True

    def __post_init__(self) -> None:
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary metric {self.primary_metric!r} is not among the metrics")

    @property
    def primary_score(self) -> float:
        """The value of the primary metric."""
        return float(self.metrics[self.primary_metric])

    def better_than(self, other: EvalResult) -> bool:
        """Whether this result beats `other` on the primary metric (both must name the same one)."""
        if other.primary_metric != self.primary_metric:
            raise ValueError(f"cannot compare {self.primary_metric} with {other.primary_metric}")
        a, b = self.primary_score, other.primary_score
        return a > b if self.greater_is_better else a < b

    def summary(self) -> dict[str, Any]:
        """``{"primary", "greater_is_better", "primary_score"}``: what a ``--json`` output adds."""
        return {
            "primary": self.primary_metric,
            "greater_is_better": self.greater_is_better,
            "primary_score": self.primary_score,
        }

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any], *, greater_is_better: bool = True) -> EvalResult:
        """A result of a metrics dict that names its primary metric under ``"primary"``."""
        return cls(metrics=dict(metrics), primary_metric=str(metrics["primary"]), greater_is_better=greater_is_better)
