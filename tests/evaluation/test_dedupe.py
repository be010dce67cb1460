"""The labelled duplicate set maker and `photopoet eval dedupe`, on scikit-image sample photos."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.evaluation.dedupe_set import (
    EDITS,
    _rotate,
    burst_frames,
    inscribed_scale,
    load_truth,
    main,
    make_dedupe_set,
)

NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    import skimage.data

    root = tmp_path_factory.mktemp("dedupe-src")
    for k in NAMES:
        Image.fromarray(getattr(skimage.data, k)()).convert("RGB").save(root / f"{k}.jpg", quality=92)
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_set_layout_and_truth(src, tmp_path):
    truth_path = make_dedupe_set(src, tmp_path / "a", n_sources=2, seed=3, n_bursts=1, max_side=200)
    truth = load_truth(truth_path)
    photos = tmp_path / "a" / "photos"
    assert truth_path == tmp_path / "a" / "truth.json"
    assert sorted(p.name for p in photos.iterdir()) == truth["photos"]
    assert len(truth["photos"]) == 2 * 10 + 2 + 2  # 2 families, 1 burst, 2 negatives (the other posts)
    kinds = [g["kind"] for g in truth["groups"]]
    assert kinds == ["exact", "duplicate", "exact", "duplicate", "similar"]
    exact, family = truth["groups"][0]["photos"], truth["groups"][1]["photos"]
    assert set(exact) < set(family) and len(family) == 10
    assert {f.split("-", 1)[1].split(".")[0] for f in family} == {"orig", "copy", "png", *EDITS}
    # exact copies: the same bytes, and the same pixels in PNG
    orig, copy, png = (photos / f for f in exact)
    assert orig.read_bytes() == copy.read_bytes()
    assert np.array_equal(np.asarray(Image.open(orig).convert("RGB")), np.asarray(Image.open(png).convert("RGB")))
    # the edits are what their names say
    tag = exact[0].split("-")[0]
    w, h = Image.open(orig).size
    assert Image.open(photos / f"{tag}-resize.jpg").size == (w // 2, h // 2)
    cw, ch = Image.open(photos / f"{tag}-crop.jpg").size
    assert 0.79 <= cw / w <= 0.91 and 0.79 <= ch / h <= 0.91
    assert Image.open(photos / f"{tag}-bw.jpg").mode == "L"
    border = np.asarray(Image.open(photos / f"{tag}-border.jpg").convert("L"))
    assert border[:3].min() > 240 and border[:, :3].min() > 240
    # no photo outside a group comes from a source's post
    made = truth["sources"]
    used = [v["from"] for v in made["sources"].values()] + [v["from"] for v in made["bursts"].values()]
    assert len(set(used) | set(made["negatives"].values())) == len(NAMES)


def test_set_is_deterministic_by_seed(src, tmp_path):
    make_dedupe_set(src, tmp_path / "a", n_sources=1, seed=5, n_bursts=0, n_negatives=1, max_side=120)
    make_dedupe_set(src, tmp_path / "b", n_sources=1, seed=5, n_bursts=0, n_negatives=1, max_side=120)
    assert _digest(tmp_path / "a" / "photos") == _digest(tmp_path / "b" / "photos")
    froms = set()
    for seed in range(6):
        t = make_dedupe_set(src, tmp_path / "c", n_sources=1, seed=seed, n_bursts=0, n_negatives=0, max_side=64)
        froms.add(json.loads(t.read_text())["sources"]["sources"]["s000"]["from"])
    assert len(froms) > 1


def test_related_photos_of_different_posts_never_both_enter_the_set(src, tmp_path):
    # astronaut and rocket are declared one picture reused in two posts: whatever the seed, at most one of
    # them is used, so the set never holds an unlabelled pair of the same picture
    related = [["astronaut.jpg", "rocket.jpg"]]
    for seed in range(8):
        t = make_dedupe_set(src, tmp_path / "r", n_sources=1, seed=seed, n_bursts=1, related=related, max_side=64)
        made = json.loads(t.read_text())["sources"]
        used = [v["from"] for v in made["sources"].values()] + [v["from"] for v in made["bursts"].values()]
        used += list(made["negatives"].values())
        assert len(used) == len(NAMES) - 1 and len({"astronaut.jpg", "rocket.jpg"} & set(used)) == 1
    with pytest.raises(ValueError, match="4 posts"):
        make_dedupe_set(src, tmp_path / "x", n_sources=3, n_bursts=2, related=related)


def test_set_errors(src, tmp_path):
    with pytest.raises(ValueError, match="5 posts"):
        make_dedupe_set(src, tmp_path / "x", n_sources=4, n_bursts=2)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        make_dedupe_set(tmp_path / "missing", tmp_path / "x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "groups": [{"kind": "burst", "photos": ["a", "b"]}], "photos": ["a", "b"]}')
    with pytest.raises(ValueError, match="group 0"):
        load_truth(bad)
    bad.write_text('{"version": 1, "groups": [{"kind": "exact", "photos": ["a", "z"]}], "photos": ["a"]}')
    with pytest.raises(ValueError, match='not in "photos"'):
        load_truth(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_truth(bad)


def test_rotation_leaves_no_empty_corners():
    import random

    white = Image.new("RGB", (400, 300), (255, 255, 255))
    for seed in range(5):
        out, p = _rotate(white, random.Random(seed))
        assert 2 <= abs(p["degrees"]) <= 4
        assert np.asarray(out).min() > 200, p  # the black fill of the rotation is cut away
    assert inscribed_scale(400, 300, 0) == pytest.approx(1.0)
    assert inscribed_scale(400, 300, 3) < inscribed_scale(400, 300, 2) < 1


def test_burst_frames_overlap_but_differ():
    import random

    import skimage.data

    im = Image.fromarray(skimage.data.astronaut())
    a, b, p = burst_frames(im, random.Random(0))
    assert a.size == b.size and 0.15 <= p["pan"] <= 0.25
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_module_entry_point(src, tmp_path, capsys):
    main([str(src), str(tmp_path / "m"), "--sources", "1", "--bursts", "1", "--negatives", "1"])
    assert "wrote 13 photos" in capsys.readouterr().out


def test_eval_dedupe_cli(src, tmp_path):
    truth = make_dedupe_set(src, tmp_path / "set", n_sources=1, seed=0, n_bursts=0, n_negatives=2, max_side=320)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"cache:\n  dir: {tmp_path / 'cache'}\n", encoding="utf-8")
    photos = tmp_path / "set" / "photos"
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "dedupe", str(photos), "--truth", str(truth), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    m = report["metrics"]
    assert m["primary"] == "f1_duplicate" and m["truth_pairs_duplicate"] == 45 - 3
    assert m["truth_pairs_exact"] == 3 and m["recall_exact"] == 1.0 and m["precision_exact"] == 1.0
    assert m["precision_any_duplicate"] == 1.0  # the two untouched photos are not grouped with anything
    assert m["recall_duplicate"] >= 0.8
    assert report["photos"] == 12 and not report["truth_photos_not_read"] and not report["photos_not_in_truth"]
    # the table, from the cache this time
    res = runner.invoke(app, ["eval", "dedupe", str(photos), "-t", str(truth), "-c", str(cfg), "-q"])
    assert res.exit_code == 0, res.output
    assert "any_duplicate" in res.stdout and "primary f1_duplicate" in res.stdout
    # a bad truth file is a clear error
    (tmp_path / "bad.json").write_text("{}")
    res = runner.invoke(app, ["eval", "dedupe", str(photos), "-t", str(tmp_path / "bad.json"), "-c", str(cfg)])
    assert res.exit_code == 2 and "bad.json" in res.output
