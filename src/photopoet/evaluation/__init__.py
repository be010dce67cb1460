"""Labelled sets and evaluations of the stages against known answers; every evaluation returns an
:class:`~photopoet.evaluation.base.EvalResult` (metrics, primary metric, greater is better)."""
