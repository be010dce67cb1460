"""Evaluation metrics, one module per family; each evaluator returns a dict naming its primary metric."""

from photopoet.metrics.duplicates import components, duplicate_metrics, tier_confusion

__all__ = ["components", "duplicate_metrics", "tier_confusion"]
