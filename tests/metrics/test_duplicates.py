"""Pairwise duplicate metrics: hand-made cases, and a brute-force check of the pair counting."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest

from photopoet.metrics.duplicates import ROWS, as_groups, duplicate_metrics, format_table, tier_confusion

TRUTH = [
    {"kind": "exact", "photos": ["a", "a-copy"]},
    {"kind": "duplicate", "photos": ["a", "a-copy", "a-crop", "a-bw"]},
    {"kind": "duplicate", "photos": ["b", "b-crop"]},
    {"kind": "similar", "photos": ["c1", "c2"]},
]
# pairs: exact 1; duplicate 6 + 1 - 1 = 6; similar 1; any_duplicate 7; any 8


def test_perfect_prediction():
    pred = [
        ("exact", ["a", "a-copy"]),
        ("duplicate", ["a", "a-crop", "a-bw"]),  # shares `a` with the exact group: union semantics
        ("duplicate", ["b-crop", "b"]),
        ("similar", ["c2", "c1"]),
    ]
    m = duplicate_metrics(TRUTH, pred)
    assert m["primary"] == "f1_duplicate"
    for row in ROWS:
        assert m[f"precision_{row}"] == m[f"recall_{row}"] == m[f"f1_{row}"] == 1.0, row
    assert [m[f"truth_pairs_{r}"] for r in ROWS] == [1, 6, 1, 7, 8]
    assert m["predicted_pairs_any"] == 8 and m["correct_pairs_duplicate"] == 6


def test_one_wrong_merge():
    # b's family merged into a's: 4 x 2 = 8 wrong duplicate pairs
    pred = [("exact", ["a", "a-copy"]), ("duplicate", ["a", "a-crop", "a-bw", "b"]), ("duplicate", ["b", "b-crop"])]
    m = duplicate_metrics(TRUTH, pred)
    assert m["predicted_pairs_duplicate"] == 15 - 1  # 6 photos in one component, minus the exact pair
    assert m["correct_pairs_duplicate"] == 6
    assert m["precision_duplicate"] == pytest.approx(6 / 14)
    assert m["recall_duplicate"] == 1.0
    assert m["recall_similar"] == 0.0 and m["precision_similar"] == 1.0 and m["f1_similar"] == 0.0
    assert m["precision_exact"] == 1.0


def test_one_miss():
    # the black-and-white copy is not found
    pred = [("exact", ["a", "a-copy"]), ("duplicate", ["a", "a-crop"]), ("duplicate", ["b", "b-crop"])]
    m = duplicate_metrics(TRUTH, pred)
    assert m["predicted_pairs_duplicate"] == 3 + 1 - 1 + 0  # {a, a-copy, a-crop}: 3 pairs, 1 exact; + b pair
    assert m["correct_pairs_duplicate"] == 3
    assert m["precision_duplicate"] == 1.0
    assert m["recall_duplicate"] == pytest.approx(3 / 6)
    assert m["f1_duplicate"] == pytest.approx(2 * 0.5 / 1.5)


def test_tier_mistakes_count_in_both_rows():
    # the burst called a duplicate; the exact copy called only a duplicate
    pred = [
        ("duplicate", ["a", "a-copy", "a-crop", "a-bw"]),
        ("duplicate", ["b", "b-crop"]),
        ("duplicate", ["c1", "c2"]),
    ]
    m = duplicate_metrics(TRUTH, pred)
    assert m["recall_exact"] == 0.0 and m["precision_exact"] == 1.0
    assert m["correct_pairs_duplicate"] == 6 and m["predicted_pairs_duplicate"] == 8
    assert m["recall_similar"] == 0.0 and m["flagged_similar"] == 1
    assert m["precision_any_duplicate"] == pytest.approx(7 / 8) and m["recall_any_duplicate"] == 1.0
    assert m["f1_any"] == 1.0  # at the loosest level everything that belongs together is together
    conf = tier_confusion(TRUTH, pred)
    assert conf["exact"] == {"exact": 0, "duplicate": 1, "similar": 0, "none": 0}
    assert conf["similar"] == {"exact": 0, "duplicate": 1, "similar": 0, "none": 0}
    assert conf["none"] == {"exact": 0, "duplicate": 0, "similar": 0}


def test_empty_cases():
    m = duplicate_metrics([], [])
    assert all(m[f"f1_{r}"] == 1.0 for r in ROWS)
    m = duplicate_metrics(TRUTH, [])
    assert m["precision_duplicate"] == 1.0 and m["recall_duplicate"] == 0.0 and m["f1_duplicate"] == 0.0
    m = duplicate_metrics([], [("duplicate", ["x", "y"])])
    assert m["precision_duplicate"] == 0.0 and m["recall_duplicate"] == 1.0 and m["f1_duplicate"] == 0.0
    # a group of one photo holds no pair
    m = duplicate_metrics([("exact", ["x"])], [("exact", ["x"])])
    assert m["truth_pairs_exact"] == 0 and m["predicted_pairs_exact"] == 0


def test_group_formats_and_errors():
    @dataclass
    class G:
        keep: str
        duplicates: list[str]
        kind: str

    got = as_groups(
        [G("a", ["b"], "exact"), {"keep": "c", "duplicates": ["d"], "kind": "similar"}, ["e", "f"]],
        default_kind="duplicate",
    )
    assert got == [("exact", ["a", "b"]), ("similar", ["c", "d"]), ("duplicate", ["e", "f"])]
    with pytest.raises(ValueError, match="kind 'burst'"):
        as_groups([("burst", ["a", "b"])])
    with pytest.raises(TypeError, match="group 0"):
        as_groups([42])
    table = format_table(duplicate_metrics(TRUTH, TRUTH), markdown=True)
    assert table.splitlines()[0].startswith("| tier | truth pairs") and "| duplicate | 6 | 6 | 6 | 1.000" in table


def _brute(groups, level):
    """Pairs of the transitive closure at `level`, listed one by one (the slow, obvious way)."""
    rank = {"exact": 0, "duplicate": 1, "similar": 2}
    edges = {frozenset(p) for k, g in groups if rank[k] <= level for p in itertools.combinations(set(g), 2)}
    nodes = {x for e in edges for x in e}
    comp = {x: {x} for x in nodes}
    for e in edges:
        a, b = tuple(e)
        if comp[a] is not comp[b]:
            merged = comp[a] | comp[b]
            for x in merged:
                comp[x] = merged
    return {frozenset(p) for c in {id(c): c for c in comp.values()}.values() for p in itertools.combinations(c, 2)}


@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force(seed):
    rng = random.Random(seed)
    photos = [f"p{i}" for i in range(14)]

    def rand_groups():
        return [
            (rng.choice(["exact", "duplicate", "similar"]), rng.sample(photos, rng.randint(1, 4)))
            for _ in range(rng.randint(0, 6))
        ]

    truth, pred = rand_groups(), rand_groups()
    m = duplicate_metrics(truth, pred)
    t = [_brute(truth, k) for k in range(3)]
    p = [_brute(pred, k) for k in range(3)]
    sets = {
        "exact": (t[0], p[0]),
        "duplicate": (t[1] - t[0], p[1] - p[0]),
        "similar": (t[2] - t[1], p[2] - p[1]),
        "any_duplicate": (t[1], p[1]),
        "any": (t[2], p[2]),
    }
    for row, (ts, ps) in sets.items():
        assert m[f"truth_pairs_{row}"] == len(ts), row
        assert m[f"predicted_pairs_{row}"] == len(ps), row
        assert m[f"correct_pairs_{row}"] == len(ts & ps), row
        assert m[f"flagged_{row}"] == len(ts & p[2]), row
