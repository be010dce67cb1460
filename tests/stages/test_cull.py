"""Culling on real small photos (scikit-image samples) with the real offline image model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import CullConfig, load_config
from photopoet.core.cache import Cache
from photopoet.pipeline import dedupe_folder
from photopoet.stages import cull as cull_mod
from photopoet.stages import measure as measure_mod
from photopoet.stages.cull import CullResult, cull, knn_pairs
from photopoet.stages.ingest import ingest
from photopoet.stages.understand import ModelSet, understand


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A config with a private cache, one open cache and one model set shared by the tests of this module."""
    root = tmp_path_factory.mktemp("cullenv")
    cfg_path = root / "config.yaml"
    cfg_path.write_text(f"cache:\n  dir: {root / 'cache'}\n", encoding="utf-8")
    cfg = load_config(cfg_path)
    (root / "cache").mkdir()
    cache = Cache(root / "cache" / "cache.sqlite3")
    models = ModelSet(cfg, root / "cache")
    yield cfg, cfg_path, cache, models
    cache.close()


def run_cull(env, folder: Path, **overrides) -> CullResult:
    cfg, _, cache, models = env
    ccfg = cfg.cull.model_copy(update=overrides) if overrides else cfg.cull
    photos = ingest(folder, cfg.ingest, cache, progress=False).photos
    und = understand(photos, cfg, cache, models, progress=False)
    return cull(und.photos, ccfg, cache, features=und.features, progress=False)


def by_name(res: CullResult) -> dict[str, object]:
    return {Path(u.photo.path).name: u for u in res.photos}


@pytest.fixture(scope="module")
def imgs():
    import skimage.data

    return {
        k: Image.fromarray(getattr(skimage.data, k)()).convert("RGB")
        for k in ("astronaut", "coffee", "chelsea", "rocket")
    }


def test_exact_same_bytes(env, imgs, tmp_path):
    imgs["astronaut"].save(tmp_path / "a.png")
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "a.png", tmp_path / "copy" / "a.png")
    imgs["rocket"].save(tmp_path / "rocket.jpg", quality=92)
    res = run_cull(env, tmp_path)
    (g,) = res.groups
    assert g.kind == "exact" and g.keep == str(tmp_path / "a.png")
    assert g.duplicates == [str(tmp_path / "copy" / "a.png")]
    assert "tie" in g.reason
    u = by_name(res)
    copy = next(x for x in res.photos if x.photo.path == str(tmp_path / "copy" / "a.png"))
    assert copy.verdict == "duplicate" and copy.duplicate_of == g.keep and "same bytes" in copy.reason
    assert u["rocket.jpg"].verdict == "keep" and u["rocket.jpg"].reason is None


def test_exact_same_pixels_other_encoding(env, imgs, tmp_path):
    imgs["astronaut"].save(tmp_path / "astronaut.png")
    imgs["astronaut"].save(tmp_path / "astronaut.webp", lossless=True)
    imgs["astronaut"].save(tmp_path / "astronaut.tif")
    res = run_cull(env, tmp_path)
    (g,) = res.groups
    assert g.kind == "exact" and len(g.duplicates) == 2
    assert {u.verdict for u in res.photos} == {"keep", "duplicate"}
    assert all("same pixels" in u.reason for u in res.photos if u.verdict == "duplicate")
    # the pixel hashes were cached: a rerun does not decode the originals again
    cfg, _, cache, _ = env
    assert len(cache.get_json(cull_mod.PIXELS_KIND, [u.photo.sha256 for u in res.photos])) == 3


def test_edited_copy_is_a_duplicate_and_the_original_is_kept(env, imgs, tmp_path):
    coffee = imgs["coffee"]
    coffee.save(tmp_path / "coffee.jpg", quality=95)
    coffee.resize((450, 300), Image.Resampling.LANCZOS).save(tmp_path / "coffee-export.jpg", quality=40)
    ImageEnhance.Brightness(coffee).enhance(1.3).convert("L").convert("RGB").save(tmp_path / "coffee-bw.jpg")
    imgs["chelsea"].save(tmp_path / "cat.jpg", quality=92)
    res = run_cull(env, tmp_path)
    (g,) = res.groups
    assert g.kind == "duplicate"
    assert g.keep == str(tmp_path / "coffee.jpg")
    assert sorted(Path(d).name for d in g.duplicates) == ["coffee-bw.jpg", "coffee-export.jpg"]
    assert set(g.scores) == {g.keep, *g.duplicates}
    assert {"sharpness", "exposure", "faces", "megapixels", "total"} <= set(g.scores[g.keep])
    u = by_name(res)
    assert u["coffee-export.jpg"].verdict == "duplicate" and "aligns as the same frame" in u["coffee-export.jpg"].reason
    assert u["cat.jpg"].verdict == "keep"
    assert str(tmp_path / "coffee-export.jpg") in res.culled and str(tmp_path / "coffee.jpg") not in res.culled


def test_similar_shot_is_its_own_tier(env, imgs, tmp_path):
    # two frames of one scene: the cup moved between them
    a = np.asarray(imgs["coffee"]).copy()
    b = a.copy()
    b[50:350, 200:550] = a[30:330, 170:520]
    Image.fromarray(a).save(tmp_path / "frame-1.png")
    Image.fromarray(b).save(tmp_path / "frame-2.png")
    res = run_cull(env, tmp_path)
    (g,) = res.groups
    assert g.kind == "similar"
    (other,) = [u for u in res.photos if u.photo.path != g.keep]
    assert other.verdict == "similar" and other.duplicate_of == g.keep and "similar shot" in other.reason
    # similar shots stay in posts when the config does not remove them
    kept = run_cull(env, tmp_path, remove=["exact", "duplicate", "low_quality"])
    assert kept.groups[0].kind == "similar" and not kept.culled and len(kept.kept()) == 2


def test_low_quality_verdicts(env, imgs, tmp_path):
    imgs["chelsea"].filter(ImageFilter.GaussianBlur(5)).save(tmp_path / "blurred.png")
    ImageEnhance.Brightness(imgs["coffee"]).enhance(0.1).save(tmp_path / "dark.png")
    ImageEnhance.Brightness(imgs["rocket"]).enhance(6.0).save(tmp_path / "blown.png")
    imgs["astronaut"].resize((200, 200)).save(tmp_path / "tiny.png")
    import skimage.data

    Image.fromarray(skimage.data.immunohistochemistry()).save(tmp_path / "good.png")
    res = run_cull(env, tmp_path)
    reasons = {Path(q.path).name: q.reason for q in res.low_quality}
    assert set(reasons) == {"blurred.png", "dark.png", "blown.png", "tiny.png"}, reasons
    assert reasons["blurred.png"].startswith("blurry: sharpness ") and "< 25" in reasons["blurred.png"]
    assert reasons["dark.png"].startswith("too dark")
    assert reasons["blown.png"].startswith("blown out")
    assert reasons["tiny.png"].startswith("low resolution: 0.04 MP")
    scores = {Path(q.path).name: q.score for q in res.low_quality}
    assert scores["blurred.png"] < 25 and scores["tiny.png"] == pytest.approx(0.04)
    u = by_name(res)
    assert u["good.png"].verdict == "keep"
    assert all(u[n].verdict == "low_quality" and u[n].reason == reasons[n] for n in reasons)
    assert not res.groups


def test_best_shot_prefers_the_sharp_one(env, imgs, tmp_path):
    imgs["astronaut"].filter(ImageFilter.GaussianBlur(1.0)).save(tmp_path / "a-soft.png")
    imgs["astronaut"].save(tmp_path / "b-sharp.png")
    res = run_cull(env, tmp_path)
    (g,) = res.groups
    assert g.kind == "duplicate"
    assert Path(g.keep).name == "b-sharp.png"
    assert g.reason.startswith("sharpest (")
    assert g.scores[g.keep]["sharpness"] > g.scores[g.duplicates[0]]["sharpness"]
    assert g.scores[g.keep]["total"] > g.scores[g.duplicates[0]]["total"]


def test_folder_of_zero_one_and_only_duplicates(env, imgs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cull(env, empty)
    assert res.groups == [] and res.low_quality == [] and res.photos == []
    one = tmp_path / "one"
    one.mkdir()
    imgs["rocket"].save(one / "rocket.jpg", quality=92)
    res = run_cull(env, one)
    assert res.groups == [] and [u.verdict for u in res.photos] == ["keep"]
    dups = tmp_path / "dups"
    dups.mkdir()
    imgs["rocket"].save(dups / "r1.png")
    shutil.copy(dups / "r1.png", dups / "r2.png")
    imgs["rocket"].save(dups / "r3.jpg", quality=60)
    res = run_cull(env, dups)
    assert [u.verdict for u in res.photos].count("keep") == 1
    assert len(res.kept()) == 1
    assert {g.kind for g in res.groups} == {"exact", "duplicate"}
    assert res.components("duplicate") == [{str(dups / n) for n in ("r1.png", "r2.png", "r3.jpg")}]
    assert res.components("exact") == [{str(dups / "r1.png"), str(dups / "r2.png")}]


def test_signals_are_cached(env, imgs, tmp_path, monkeypatch):
    imgs["chelsea"].save(tmp_path / "cat.png")
    imgs["chelsea"].save(tmp_path / "cat.jpg", quality=50)
    first = run_cull(env, tmp_path)

    def boom(*a, **k):
        raise AssertionError("recomputed a cached value")

    monkeypatch.setattr(measure_mod, "measure_photo", boom)
    monkeypatch.setattr(cull_mod, "alignment_score", boom)
    monkeypatch.setattr(cull_mod, "pixel_hash", boom)
    again = run_cull(env, tmp_path)
    assert [g.to_json() for g in again.groups] == [g.to_json() for g in first.groups]


def test_disabled_keeps_everything(env, imgs, tmp_path):
    imgs["rocket"].save(tmp_path / "r1.png")
    shutil.copy(tmp_path / "r1.png", tmp_path / "r2.png")
    res = run_cull(env, tmp_path, enabled=False)
    assert res.groups == [] and {u.verdict for u in res.photos} == {"keep"} and len(res.kept()) == 2


def test_knn_pairs_exact_and_approximate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 256)).astype(np.float32)
    x[1] = x[0] + 0.05 * rng.normal(size=256)
    x[3] = x[2] + 0.05 * rng.normal(size=256)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for approximate in (False, True):
        got = {(i, j) for i, j, _ in knn_pairs(x, 5, 0.9, approximate=approximate)}
        assert got == {(0, 1), (2, 3)}, approximate
    assert knn_pairs(x[:1], 5, 0.0) == []


def test_dedupe_cli_json_shape(env, imgs, tmp_path):
    _, cfg_path, _, _ = env
    imgs["coffee"].save(tmp_path / "coffee.png")
    shutil.copy(tmp_path / "coffee.png", tmp_path / "copy-of-coffee.png")
    imgs["chelsea"].filter(ImageFilter.GaussianBlur(5)).save(tmp_path / "blurred.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    runner = CliRunner()
    res = runner.invoke(app, ["dedupe", str(tmp_path), "--config", str(cfg_path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {"groups", "low_quality", "unreadable", "warnings"}
    (g,) = doc["groups"]
    assert set(g) == {"keep", "duplicates", "kind", "scores", "reason"}
    assert g["kind"] == "exact" and g["keep"] == str(tmp_path / "coffee.png")
    assert g["duplicates"] == [str(tmp_path / "copy-of-coffee.png")]
    assert set(g["scores"]) == {g["keep"], *g["duplicates"]}
    (q,) = doc["low_quality"]
    assert set(q) == {"path", "reason", "score"} and q["path"].endswith("blurred.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing deleted or moved
    text = runner.invoke(app, ["dedupe", str(tmp_path), "--config", str(cfg_path), "-q"])
    assert text.exit_code == 0 and "nothing was changed" in text.output and "blurry" in text.output
    missing = runner.invoke(app, ["dedupe", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_dedupe_folder_api(env, imgs, tmp_path):
    cfg, _, _, _ = env
    imgs["rocket"].save(tmp_path / "r.png")
    res = dedupe_folder(tmp_path, cfg, progress=False)
    assert isinstance(res, CullResult) and [u.verdict for u in res.photos] == ["keep"]


def test_cull_config_validation():
    with pytest.raises(ValueError, match="similar_alignment"):
        CullConfig(similar_alignment=0.9, duplicate_alignment=0.8)
    with pytest.raises(ValueError, match="similar_cosine"):
        CullConfig(similar_cosine=0.5, candidate_cosine=0.6)
    with pytest.raises(ValueError):
        CullConfig(remove=["blurry"])
    assert CullConfig(remove=["exact", "exact"]).remove == ["exact"]


def test_burst_frames_that_only_align_partly_form_a_similar_group(env, imgs, tmp_path):
    # a pan of about a fifth of the frame and a moved subject: features differ (cosine well under
    # similar_cosine), so only the partial alignment makes the pair a similar shot
    import random

    from photopoet.evaluation.dedupe_set import burst_frames

    a, b, _ = burst_frames(imgs["astronaut"], random.Random(3))
    a.save(tmp_path / "burst-1.jpg", quality=92)
    b.save(tmp_path / "burst-2.jpg", quality=92)
    imgs["rocket"].save(tmp_path / "rocket.jpg", quality=92)
    cfg = env[0]
    cfg_photos = ingest(tmp_path, cfg.ingest, env[2], progress=False).photos
    und = understand(cfg_photos, cfg, env[2], env[3], progress=False)
    f = {Path(u.photo.path).name: und.features[i] for i, u in enumerate(und.photos)}
    assert float(f["burst-1.jpg"] @ f["burst-2.jpg"]) < cfg.cull.similar_cosine
    res = run_cull(env, tmp_path)
    (g,) = res.groups
    assert g.kind == "similar"
    assert {Path(p).name for p in (g.keep, *g.duplicates)} == {"burst-1.jpg", "burst-2.jpg"}
    assert "alignment" in by_name(res)[Path(g.duplicates[0]).name].reason


def test_similar_groups_need_every_pair_linked():
    # a chain 0-1-2-3 of similar links must not become one group (the ends are not alike); complete linkage
    # on the links, strongest first, gives {0,1} and {2,3}; a triangle 4-5-6, every pair linked, is one group
    strength = {(0, 1): 0.9, (1, 2): 0.8, (2, 3): 0.7, (4, 5): 0.5, (5, 6): 0.4, (4, 6): 0.45}
    groups = cull_mod.group_by_tier(
        8,
        {"similar": list(strength)},
        lambda i, j: strength[(min(i, j), max(i, j))],
        lambda members: (max(members), "highest index"),
    )
    assert sorted(sorted(g.members) for g in groups) == [[0, 1], [2, 3], [4, 5, 6]]
    assert all(g.kind == "similar" and g.keep == max(g.members) for g in groups)


def test_tiers_are_grouped_strongest_first_on_the_kept_photos():
    # 0 and 1 are exact copies (1 kept), 2 an edited copy of 0; 3 a burst frame of 2: the duplicate tier
    # joins 2 to the exact group's keeper, the similar tier joins 3 to the duplicate group's keeper
    links = {"exact": [(0, 1)], "duplicate": [(0, 2)], "similar": [(2, 3)]}
    groups = cull_mod.group_by_tier(5, links, lambda i, j: 1.0, lambda members: (max(members), "highest index"))
    got = [(g.kind, g.keep, sorted(g.members)) for g in groups]
    assert got == [("exact", 1, [0, 1]), ("duplicate", 2, [1, 2]), ("similar", 3, [2, 3])]


def test_a_small_downscaled_copy_is_linked_to_its_original(env, imgs, tmp_path):
    """Issue 19: a downscaled copy was flagged low resolution but not linked (too few features to align, and its
    feature cosine below candidate_cosine); the low-resolution flag must not hide the duplicate link."""
    for name, side in [("astronaut", 48), ("chelsea", 100), ("rocket", 100)]:
        imgs[name].save(tmp_path / f"{name}.jpg", quality=92)
        small = imgs[name].copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        small.save(tmp_path / f"{name}-small.jpg", quality=80)
    res = run_cull(env, tmp_path)
    u = by_name(res)
    for name in ["astronaut", "chelsea", "rocket"]:
        copy = u[f"{name}-small.jpg"]
        assert copy.verdict == "duplicate", (name, copy.reason)
        assert copy.duplicate_of == str(tmp_path / f"{name}.jpg")
        assert "same picture at another size" in copy.reason and "also low resolution" in copy.reason
        assert u[f"{name}.jpg"].verdict == "keep"
    assert {Path(g.keep).name for g in res.groups} == {"astronaut.jpg", "chelsea.jpg", "rocket.jpg"}


def test_dedupe_lists_the_files_it_could_not_read_with_reasons(env, imgs, tmp_path):
    """Issue 19: `photopoet dedupe` never mentioned the files it could not read, in text or --json."""
    _, cfg_path, _, _ = env
    imgs["coffee"].save(tmp_path / "coffee.png")
    good = (tmp_path / "coffee.png").read_bytes()
    (tmp_path / "half.png").write_bytes(good[: len(good) // 3])
    (tmp_path / "notes.txt").write_text("shot list\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["dedupe", str(tmp_path), "--config", str(cfg_path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    reasons = {Path(x["path"]).name: x["reason"] for x in doc["unreadable"]}
    assert set(reasons) == {"half.png", "notes.txt"}
    assert "truncated" in reasons["half.png"] and "not an image" in reasons["notes.txt"]
    text = runner.invoke(app, ["dedupe", str(tmp_path), "--config", str(cfg_path), "-q"])
    assert text.exit_code == 0
    assert f"not read: {tmp_path / 'half.png'}: " in text.output and "2 files not read" in text.output


def test_two_tiny_photos_are_judged_without_a_crash_or_a_warning(env, tmp_path, recwarn):
    """A 1-pixel-wide photo made OpenCV's ORB fail (cv2.error) and numpy warn (empty Laplacian)."""
    Image.new("RGB", (1, 300), (9, 200, 9)).save(tmp_path / "line.png")
    Image.new("RGB", (1, 200), (9, 200, 9)).save(tmp_path / "line-small.png")
    Image.new("RGB", (2, 2), (200, 9, 9)).save(tmp_path / "dot.png")
    res = run_cull(env, tmp_path)
    assert {u.verdict for u in res.photos} <= {"low_quality", "duplicate", "keep"}
    assert [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)] == []


def test_sharpest_reason_shows_the_numbers_it_compared():
    """Issue 19: 'sharpest (994 vs 1050)' was printed for the photo that was *less* sharp: the choice compares
    detail (sharpness relative to contrast) and printed the raw sharpness."""
    from photopoet.records import Photo, Understood
    from photopoet.stages.cull import _pick_best

    photos = [Understood(photo=Photo(f"/p/{i}.jpg", f"s{i}", 100, 100, "JPEG", 10, None, None, 1)) for i in range(2)]
    scores = {
        0: {"sharpness": 994.0, "detail": 2.0, "exposure": 0.9, "faces": 0.0, "eyes_open": 1.0, "megapixels": 1.0},
        1: {"sharpness": 1050.0, "detail": 1.0, "exposure": 0.9, "faces": 0.0, "eyes_open": 1.0, "megapixels": 1.0},
    }
    best, why = _pick_best([0, 1], photos, scores, set(), CullConfig())
    assert best == 0
    assert "994 vs 1050" not in why and "1050" not in why
    assert "detail 2.00 vs 1.00" in why


def test_dedupe_prints_names_escaped_and_warnings_with_the_file(env, imgs, tmp_path):
    """Issue 19: names with a newline or a right-to-left override were printed raw, and Pillow's warnings came
    without a file name."""
    import struct

    _, cfg_path, _, _ = env
    ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x010E, 2, 100_000, 26) + struct.pack(">I", 0)
    exif = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + b"hello\x00"
    imgs["coffee"].save(tmp_path / "holiday\u202egpj.exe.jpg", exif=exif)
    (tmp_path / "two\nlines.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    imgs["chelsea"].resize((200, 150)).save(tmp_path / "tiny\x1b[31m.png")
    res = CliRunner().invoke(app, ["dedupe", str(tmp_path), "--config", str(cfg_path), "-q"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "\u202e" not in out and "\x1b" not in out and "two\nlines" not in out
    assert "holiday\\u202egpj.exe.jpg" in out and "two\\nlines.png" in out and "tiny\\x1b[31m.png" in out
    warn = [x for x in out.splitlines() if x.startswith("warning: ")]
    assert len(warn) == 1 and "holiday\\u202egpj.exe.jpg: " in warn[0] and "Tag data larger than file" in warn[0]
    doc = json.loads(CliRunner().invoke(app, ["dedupe", str(tmp_path), "--config", str(cfg_path), "--json"]).stdout)
    assert [Path(w["path"]).name for w in doc["warnings"]] == ["holiday\u202egpj.exe.jpg"]
