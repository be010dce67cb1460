"""One grouping path: `photopoet group` and `photopoet run` give the same posts for the same kept photos.

Checked on a small real subset of the club's photos (the full 311 through `run` writes captions and poems for
every post, too slow for a test): the photos of eight club posts plus an exact copy of one photo, which culling
sets aside. `benchmarks/group_eval.py` scores the same path on the full club set.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from group_fakes import item
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import GroupConfig, load_config
from photopoet.evaluation.grouping import paired_bootstrap, post_shape
from photopoet.pipeline import group_folder, run
from photopoet.stages.group import _natural_key, group_photos

CLUB = Path(__file__).resolve().parents[1] / ".." / "shared" / "club"


@pytest.fixture(scope="module")
def club_subset(tmp_path_factory):
    if not (CLUB / "posts.jsonl").is_file():
        pytest.skip(f"{CLUB}: the club data is not here")
    posts = [json.loads(line) for line in (CLUB / "posts.jsonl").read_text(encoding="utf-8").splitlines() if line]
    picked = [p for p in posts if 1 <= len(p["images"]) <= 6][:8]
    d = tmp_path_factory.mktemp("club")
    photos = d / "images"
    photos.mkdir()
    for p in picked:
        for name in p["images"]:
            shutil.copy(CLUB / "images" / name, photos / name)
    first = picked[0]["images"][0]
    shutil.copy(CLUB / "images" / first, photos / ("copy_" + first))  # an exact duplicate: culling sets it aside
    cfg = d / "config.yaml"
    cfg.write_text(
        f"cache:\n  dir: {d / 'cache'}\ncaption:\n  mode: template\nhaiku:\n  enabled: false\n", encoding="utf-8"
    )
    return photos, cfg, d


def test_group_and_run_give_the_same_posts_on_club_photos(club_subset):
    photos, cfg_path, d = club_subset
    cfg = load_config(cfg_path)
    res = run(photos, d / "out", cfg, progress=False)
    assert res.set_aside >= 1  # the copy
    got = CliRunner().invoke(app, ["group", str(photos), "--config", str(cfg_path), "--json"])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.stdout)
    assert [(p["photos"], p["cover"]) for p in doc["posts"]] == [(p.photos, p.cover) for p in res.posts]
    set_aside = {u.photo.path for u in res.photos} - {x for p in res.posts for x in p.photos}
    assert set_aside and set_aside <= {e["path"] for e in doc["excluded"]}
    assert not set_aside & {x for p in doc["posts"] for x in p["photos"]}
    # the library function the CLI calls agrees too
    assert [p.photos for p in group_folder(photos, cfg, progress=False).grouping.posts] == [p.photos for p in res.posts]


def scenes(sizes, seed=0, noise=0.25, dim=32):
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        c = rng.normal(size=dim)
        rows += [c / np.linalg.norm(c) + noise * rng.normal(size=dim) / np.sqrt(dim) for _ in range(n)]
    return np.stack(rows)


def items(n, prefix="IMG_"):
    return [item(f"{prefix}{i}") for i in range(n)]


def test_distance_cut_keeps_the_posts_when_a_few_photos_leave():
    sizes = [5, 3, 1, 6, 4, 2, 7, 3, 1, 4]
    feats = scenes(sizes, seed=3)
    cfg = GroupConfig(k_choice="distance", order_weight=0.0, color_weight=0.0)
    full = group_photos(items(len(feats)), feats, cfg)
    assert len(full.posts) == len(sizes)
    keep = [i for i in range(len(feats)) if i not in (0, 9, 20)]  # three photos leave (none a post's last)
    fewer = group_photos([items(len(feats))[i] for i in keep], feats[keep], cfg)
    assert len(fewer.posts) == len(sizes)


def test_file_order_joins_neighbours_and_reads_numbers_naturally():
    assert _natural_key("/p/IMG_9.jpg") < _natural_key("/p/IMG_10.jpg")
    # two looks, each shot in two runs far apart in file order: order splits them into four posts
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=32), rng.normal(size=32)
    look = [a] * 4 + [b] * 4 + [a] * 4 + [b] * 4
    feats = np.stack([v / np.linalg.norm(v) + 0.05 * rng.normal(size=32) for v in look])
    its = items(16)
    # cut below 0.5: at the default 0.6 identical looks stay one post however far apart they were filed
    cfg = GroupConfig(k_choice="distance", cut_distance=0.45, color_weight=0.0, order_window=8)
    plain = group_photos(its, feats, cfg.model_copy(update={"order_weight": 0.0}))
    ordered = group_photos(its, feats, cfg.model_copy(update={"order_weight": 1.0}))
    assert len(plain.posts) == 2 and len(ordered.posts) == 4
    assert all(len(p.photos) == 4 for p in ordered.posts)


def test_post_shape_and_paired_bootstrap():
    assert post_shape([0, 0, 1, 2, 2, 2]) == (3, pytest.approx(1 / 3))
    truth = [0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4]
    good = truth
    bad = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]
    b = paired_bootstrap(truth, bad, good, n=200)
    assert b["diff"] > 0 and 0 < b["lo"] <= b["diff"] <= b["hi"]


def test_a_text_heavy_poster_is_a_post_of_its_own():
    from dataclasses import replace

    from photopoet.records import Scene, TextLine

    feats = scenes([4, 4], seed=5, noise=0.05)
    its = items(8)
    line = TextLine(text="Photo walk, Sunday 7 am", confidence=0.9, box=(0.1, 0.1, 0.9, 0.2))
    its[1] = replace(its[1], scene=Scene(kind="poster", poster_score=0.99, text=(line,) * 12))
    its[5] = replace(its[5], scene=Scene(kind="poster", poster_score=0.6))  # a weak poster stays with its scene
    cfg = GroupConfig(order_weight=0.0, color_weight=0.0)
    got = sorted(sorted(int(x.rsplit("_", 1)[1][:-4]) for x in p.photos) for p in group_photos(its, feats, cfg).posts)
    assert got == [[0, 2, 3], [1], [4, 5, 6, 7]]
    assert len(group_photos(its, feats, cfg.model_copy(update={"alone_posters": False})).posts) == 2
    # with OCR demanded, a poster nothing was read from is not set apart
    strict = cfg.model_copy(update={"alone_text_lines": 13})
    assert len(group_photos(its, feats, strict).posts) == 2
