"""The SemDeDup-style partitioned candidate search, checked against the exact search on planted near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from photopoet.config import CullConfig
from photopoet.stages.cull import candidate_pairs, knn_pairs, partitioned_pairs


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Unit vectors in scenes (cosine ~0.4 inside a scene) with n/20 planted pairs at cosine 0.90-0.99."""
    rng = np.random.default_rng(seed)

    def unit(rows: int) -> np.ndarray:
        v = rng.standard_normal((rows, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    scenes = unit(n // 50)
    x = 0.6 * scenes[rng.integers(0, len(scenes), n)] + 0.7 * unit(n)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    perm = rng.permutation(n)
    pairs = []
    for a, b in perm[: n // 10].reshape(-1, 2):
        noise = unit(1)[0]
        noise -= (noise @ x[a]) * x[a]
        noise /= np.linalg.norm(noise)
        c = rng.uniform(0.90, 0.99)
        x[b] = c * x[a] + np.sqrt(1 - c * c) * noise
        pairs.append((min(a, b), max(a, b)))
    return x.astype(np.float32), pairs


@pytest.fixture(scope="module")
def data():
    return planted(6000, 96)


def recall(found, pairs) -> float:
    got = {(i, j) for i, j, _ in found}
    return sum(p in got for p in pairs) / len(pairs)


def test_partitioned_finds_the_pairs_the_exact_search_finds(data):
    x, pairs = data
    exact = knn_pairs(x, 10, 0.8, approximate=False)
    part = partitioned_pairs(x, 10, 0.8, partition_size=300)  # 20 partitions
    assert recall(exact, pairs) == 1.0
    assert recall(part, pairs) >= 0.99
    # every pair it reports is a true pair at its exact cosine, above the floor
    for i, j, c in part:
        assert i < j and c >= 0.8 and abs(c - float(x[i] @ x[j])) < 1e-5
    # nothing the exact search misses: the partitioned pairs are (nearly) a subset of the exact ones
    assert len({(i, j) for i, j, _ in part} - {(i, j) for i, j, _ in exact}) <= len(part) * 0.01


def test_two_partitions_per_row_recover_pairs_split_by_a_border(data):
    x, pairs = data
    one = partitioned_pairs(x, 10, 0.8, partition_size=150, copies=1)  # 40 small partitions: more borders
    two = partitioned_pairs(x, 10, 0.8, partition_size=150, copies=2)
    assert recall(two, pairs) >= recall(one, pairs)
    assert recall(two, pairs) >= 0.99


def test_small_sets_fall_back_to_the_exact_search(data):
    x, _ = data
    assert partitioned_pairs(x[:50], 5, 0.5) == knn_pairs(x[:50], 5, 0.5, approximate=False)
    assert partitioned_pairs(x[:1], 5, 0.5) == []


def test_candidate_pairs_follow_the_config(data):
    x, pairs = data
    cfg = CullConfig(index="partitioned", partition_size=300, candidate_cosine=0.8)
    assert recall(candidate_pairs(x, cfg), pairs) >= 0.99
    assert candidate_pairs(x[:200], CullConfig(index="exact")) == knn_pairs(x[:200], 10, 0.6, approximate=False)
    with pytest.raises(ValueError):
        CullConfig(index="hnsw")
