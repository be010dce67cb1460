"""Every evaluation returns an EvalResult: its metrics, the primary one named, and which way is better."""

import json

import numpy as np
import pytest
from group_fakes import item, unit

from photopoet.config import load_config
from photopoet.evaluation.base import EvalResult
from photopoet.evaluation.dedupe import relative_groups, score_groups
from photopoet.evaluation.grouping import evaluate_grouping
from photopoet.evaluation.retrieval import evaluate_retrieval
from photopoet.evaluation.text import evaluate_files


def scenes(sizes, seed=0, noise=0.05, dim=32):
    """Unit vectors in tight clusters of the given sizes, one cluster per scene."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        c = unit(rng.normal(size=dim))
        rows += [unit(c + noise * rng.normal(size=dim)) for _ in range(n)]
    return np.stack(rows)


def _check(res: EvalResult, primary: str) -> None:
    assert isinstance(res, EvalResult)
    assert res.primary_metric == primary and res.greater_is_better is True
    assert res.primary_score == pytest.approx(float(res.metrics[primary]))
    assert res.summary() == {"primary": primary, "greater_is_better": True, "primary_score": res.primary_score}


def test_grouping_result():
    sizes = [3, 5, 4, 2]
    truth = [i for i, n in enumerate(sizes) for _ in range(n)]
    cfg = load_config(overrides={"group": {"order_weight": 0.0}})
    ev = evaluate_grouping([item(f"e{i:02d}") for i in range(len(truth))], scenes(sizes, seed=7), truth, cfg)
    _check(ev, "ari")
    assert ev.ours is ev.metrics and ev.primary_score == pytest.approx(1.0)
    doc = ev.to_json()
    assert {"photos", "true_posts", "ours", "baseline", "primary", "greater_is_better"} <= doc.keys()


def test_dedupe_result(tmp_path):
    truth = {
        "version": 1,
        "photos": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
        "groups": [{"kind": "duplicate", "photos": ["a.jpg", "b.jpg", "c.jpg"]}],
    }
    root = tmp_path / "photos"
    found = [("duplicate", [str(root / "a.jpg"), str(root / "b.jpg")])]
    predicted = relative_groups(found, root)
    assert predicted == [("duplicate", ["a.jpg", "b.jpg"])]
    res = score_groups(truth, predicted, {"a.jpg", "b.jpg", "c.jpg", "e.jpg"})
    _check(res, "f1_duplicate")
    assert res.metrics["precision_duplicate"] == 1.0 and res.metrics["recall_duplicate"] == pytest.approx(1 / 3)
    assert res.truth_photos_not_read == ["d.jpg"] and res.photos_not_in_truth == ["e.jpg"]
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["metrics"]["primary"] == "f1_duplicate" and doc["primary"] == "f1_duplicate"
    assert {"metrics", "confusion", "photos", "truth_photos_not_read", "photos_not_in_truth", "seconds"} <= doc.keys()


def test_text_result(tmp_path):
    pred, ref = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    pred.write_text('{"id": 1, "text": "a cat on a mat"}\n{"id": 2, "text": "two dogs"}\n', encoding="utf-8")
    ref.write_text('{"id": 1, "refs": ["a cat on the mat"]}\n{"id": 2, "text": "two dogs run"}\n', encoding="utf-8")
    res = evaluate_files(pred, ref, "none")
    _check(res, "cider")
    assert res.to_json()["primary"] == "cider" and res.to_json()["greater_is_better"] is True


def test_retrieval_result_and_comparison():
    qrels = {"q1": {"a"}, "q2": {"b"}}
    good = evaluate_retrieval({"q1": ["a", "x"], "q2": ["b", "y"]}, qrels, ks=(1, 5))
    bad = evaluate_retrieval({"q1": ["x", "a"], "q2": ["y", "z"]}, qrels, ks=(1, 5))
    _check(good, "ndcg@5")
    assert good.n == 2 and set(good.per_query) == {"q1", "q2"} and "per_query" not in good.metrics
    assert good.better_than(bad) and not bad.better_than(good)


def test_direction_and_naming_are_checked():
    lower = EvalResult(metrics={"loss": 0.5}, primary_metric="loss", greater_is_better=False)
    assert lower.better_than(EvalResult(metrics={"loss": 0.7}, primary_metric="loss", greater_is_better=False))
    with pytest.raises(ValueError, match="not among the metrics"):
        EvalResult(metrics={"loss": 0.5}, primary_metric="ari")
    with pytest.raises(ValueError, match="cannot compare"):
        lower.better_than(EvalResult(metrics={"ari": 0.5}, primary_metric="ari"))
    assert EvalResult.from_metrics({"cider": 0.4, "primary": "cider"}).primary_score == pytest.approx(0.4)
