"""Small understood photos and feature rows for the grouping tests."""

import numpy as np

from photopoet.records import Label, Photo, Understood


def item(name: str, taken_at: str | None = None, labels=()) -> Understood:
    p = Photo(
        path=f"/p/{name}.jpg", sha256=name * 8, width=10, height=10, format="JPEG", size_bytes=1, taken_at=taken_at
    )
    return Understood(photo=p, labels=tuple(Label(n, s) for n, s in labels))


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def two_scenes(n_a: int, n_b: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = unit(rng.normal(size=16)), unit(rng.normal(size=16))
    rows = [unit(a + 0.05 * rng.normal(size=16)) for _ in range(n_a)]
    rows += [unit(b + 0.05 * rng.normal(size=16)) for _ in range(n_b)]
    return np.stack(rows)
