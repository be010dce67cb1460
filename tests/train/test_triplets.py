"""`photopoet data triplets`: kNN groups of three photos, merged captions, bad caption lines, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner
from write_fakes import ScriptedGenerator

from photopoet.cli import app
from photopoet.config import CacheConfig, TripletsConfig, load_config
from photopoet.stages.write.haiku import DESCRIBE_INSTRUCTION
from photopoet.train.triplets import build_triplets, form_triplets, group_id, knn, load_captions

CAPTIONS = {
    "coffee": "A cup of coffee on a saucer in the morning light.",
    "chelsea": "Our club cat sleeping in the sun.",
    "rocket": "A rocket on the launch pad before lift-off.",
}
CAT_AGAIN = "The cat again, awake now. Then asleep."  # the third cat photo has a caption of its own


def variants(img: Image.Image) -> list[Image.Image]:
    """Three views of one scene: a resize, a crop, a mirrored crop (small, so the model runs fast)."""
    w, h = img.size
    crop = img.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    return [img.resize((192, 192 * h // w)), crop.resize((176, 176 * h // w)), ImageOps.mirror(crop).resize((160, 128))]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, images: dict[str, Image.Image]) -> Path:
    root = tmp_path_factory.mktemp("triplets")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in CAPTIONS:
        for i, im in enumerate(variants(images[name])):
            (photos / "sub" if i == 2 else photos).joinpath(f"{name}{i}.jpg").parent.mkdir(exist_ok=True)
            im.save((photos / "sub" if i == 2 else photos) / f"{name}{i}.jpg", quality=90)
    images["astronaut"].resize((128, 128)).save(photos / "astronaut.jpg")  # no caption: takes no part
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    lines = [
        # per post, as the club's posts.jsonl (bare file names, one in a subfolder)
        json.dumps(
            {"post_id": "p1", "images": ["coffee0.jpg", "coffee1.jpg", "coffee2.jpg"], "caption": CAPTIONS["coffee"]}
        ),
        json.dumps({"images": ["chelsea0.jpg", "chelsea1.jpg"], "caption": CAPTIONS["chelsea"]}),
        # per photo, with a relative path
        json.dumps({"image": "sub/chelsea2.jpg", "caption": CAT_AGAIN}),
        json.dumps({"images": ["rocket0.jpg", "rocket1.jpg", "rocket2.jpg"], "caption": CAPTIONS["rocket"]}),
        "{not json",
        json.dumps({"image": "x.jpg"}),
        json.dumps({"images": [], "caption": "nothing"}),
        json.dumps({"image": "gone.jpg", "caption": "a photo that is not in the folder"}),
    ]
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the user cache, as a run uses it (ConSE's class-name matrix is embedded once and reused)
    (root / "config.yaml").write_text("triplets:\n  min_similarity: 0.3\n  max_similarity: 0.999\n")
    return root


def test_form_triplets_on_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32))
    x = np.concatenate([c + rng.normal(scale=0.25, size=(4, 32)) for c in centres])  # 4 clusters of 4
    x[15] = x[14] + 1e-4  # a near-duplicate pair inside the last cluster
    cfg = TripletsConfig(min_similarity=0.5, max_similarity=0.98)
    groups = form_triplets(x, cfg)
    flat = [i for g, _ in groups for i in g]
    assert len(flat) == len(set(flat))  # disjoint
    assert len(groups) == 4 and all(len({i // 4 for i in g}) == 1 for g, _ in groups)  # one cluster each
    assert not any({14, 15} <= set(g) for g, _ in groups)  # near-duplicates never together
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    for g, s in groups:
        pair = [float(z[a] @ z[b]) for a, b in ((g[0], g[1]), (g[0], g[2]), (g[1], g[2]))]
        assert all(0.5 <= p < 0.98 for p in pair) and s == pytest.approx(np.mean(pair), abs=1e-5)
    assert form_triplets(x, TripletsConfig(min_similarity=0.99, max_similarity=0.999)) == []
    idx, sim = knn(x, 3)
    assert idx.shape == (16, 3) and 14 not in idx[14] and idx[14][0] == 15 and np.all(np.diff(sim, axis=1) <= 0)
    assert group_id(["b", "a", "c"]) == group_id(["c", "b", "a"]) != group_id(["a", "b", "d"])


def test_load_captions_reports_bad_lines(folder: Path) -> None:
    caps = load_captions(folder / "captions.jsonl")
    assert caps.by_name["coffee1.jpg"] == CAPTIONS["coffee"] and caps.by_name["sub/chelsea2.jpg"] == CAT_AGAIN
    f = folder / "captions.jsonl"
    assert caps.problems == [
        f"{f}:5: not JSON (Expecting property name enclosed in double quotes)",
        f"{f}:6: needs a non-empty 'caption' string",
        f"{f}:7: needs 'image' (a file name) or 'images' (a list of file names)",
    ]


def read(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_build_groups_merges_and_resumes(folder: Path, tmp_path: Path) -> None:
    cfg = load_config(folder / "config.yaml")
    out = tmp_path / "triplets.jsonl"
    gen = ScriptedGenerator(["Our club cat sleeping in three sunny photos. Then more\nImage 4: more"])
    res = build_triplets(
        folder / "photos", folder / "captions.jsonl", out, cfg, generator=gen, max_groups=1, progress=False
    )
    assert res.photos == 10 and res.with_caption == 9 and res.groups == 1 and res.written == 1
    assert res.captions_unmatched == 1 and any("broken.jpg" in p for p in res.problems)

    res2 = build_triplets(folder / "photos", folder / "captions.jsonl", out, cfg, generator=gen, progress=False)
    assert res2.groups == 3 and res2.skipped_done == 1 and res2.written == 2
    assert len(gen.prompts) == 1 and DESCRIBE_INSTRUCTION in gen.prompts[0]  # only the cats had two captions
    assert res.generated + res2.generated == 1
    rows = read(out)
    assert len(rows) == 3 and len({r["group_id"] for r in rows}) == 3
    for r in rows:
        assert set(r) >= {"group_id", "image_ids", "captions", "merged_caption"} and len(r["image_ids"]) == 3
        scene = {Path(i).stem.rstrip("012") for i in r["image_ids"]}
        assert len(scene) == 1  # the three views of one scene, from the folder and its subfolder
        name = scene.pop()
        assert r["group_id"] == group_id(r["image_ids"])
        if name == "chelsea":  # the scripted answer names the cat: its first sentence is kept
            assert sorted(r["captions"]) == sorted([CAPTIONS[name]] * 2 + [CAT_AGAIN])
            assert all(cap in gen.prompts[0] for cap in r["captions"])
            assert r["merged_caption"] == "Our club cat sleeping in three sunny photos."
            assert r["merged_by"] == "generator"
        else:  # one caption three times: it is the description, and the generator is not asked
            assert r["captions"] == [CAPTIONS[name]] * 3
            assert r["merged_caption"] == CAPTIONS[name] and r["merged_by"] == "identical"

    # a run killed in the middle of a line: the half line is dropped and that group written again
    text = out.read_text(encoding="utf-8")
    out.write_text(text[: len(text) - 25], encoding="utf-8")
    res3 = build_triplets(folder / "photos", folder / "captions.jsonl", out, cfg, generator=gen, progress=False)
    assert res3.written == 1 and res3.skipped_done == 2 and any("half-written" in p for p in res3.problems)
    assert sorted(r["group_id"] for r in read(out)) == sorted(r["group_id"] for r in rows)

    # nothing left to do: the generator is never asked for
    calls = len(gen.prompts)
    res4 = build_triplets(folder / "photos", folder / "captions.jsonl", out, cfg, generator=gen, progress=False)
    assert res4.written == 0 and len(gen.prompts) == calls


def test_cli_without_generator_and_errors(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    args = ["data", "triplets", str(folder / "photos"), "--captions", str(folder / "captions.jsonl")]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "-c", str(folder / "config.yaml"), "--no-generate", "-q"])
    assert res.exit_code == 0, res.output
    assert "10 photos, 9 with a caption: 3 triplets; 3 written" in res.stdout
    assert f"{folder / 'captions.jsonl'}:5: not JSON" in res.stderr and "broken.jpg" in res.stderr
    assert "1 captioned names match no photo" in res.stderr
    by = {Path(r["image_ids"][0]).stem.rstrip("012"): r["merged_by"] for r in read(out)}
    assert by == {"chelsea": "fallback", "coffee": "identical", "rocket": "identical"}

    few = tmp_path / "few.jsonl"
    few.write_text(json.dumps({"image": "coffee0.jpg", "caption": "one"}) + "\n")
    res = CliRunner().invoke(
        app, ["data", "triplets", str(folder / "photos"), "--captions", str(few), "--out", str(tmp_path / "x.jsonl"),
              "-c", str(folder / "config.yaml"), "-q"]
    )  # fmt: skip
    assert res.exit_code == 2 and "1 of 10 photos" in res.stderr and "needs three" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("triplets:\n  min_similarity: 0.9\n  max_similarity: 0.5\n")
    res = CliRunner().invoke(app, [*args, "--out", str(out), "-c", str(bad)])
    assert res.exit_code == 2 and "min_similarity (0.9) must be below max_similarity (0.5)" in res.stderr


def test_merge_keeps_one_whole_grounded_sentence_or_falls_back() -> None:
    from photopoet.train.triplets import merge_captions

    cfg = TripletsConfig()
    caps = ["A cup of coffee on a saucer.", "Coffee beans in a jar, and more.", "Steam over a cup."]
    cases = [
        ("Coffee in every frame, cup and beans. And the steam rises over", "Coffee in every frame, cup and beans."),
        ("Coffee in every frame, cup and beans and the steam rising over the", None),  # cut by max_new_tokens
        ("A rocket on the launch pad.", None),  # names nothing of the captions
        ("", None),
    ]
    for answer, kept in cases:
        text, by = merge_captions(caps, ScriptedGenerator([answer]), cfg)
        if kept is None:
            assert (text, by) == ("A cup of coffee on a saucer.", "fallback"), answer
        else:
            assert (text, by) == (kept, "generator"), answer
    assert merge_captions(caps, None, cfg) == ("A cup of coffee on a saucer.", "fallback")
    gen = ScriptedGenerator(["never asked"])
    same = ["Our cat. Asleep.", " Our  cat. Asleep.", "Our cat. Asleep."]
    assert merge_captions(same, gen, cfg) == ("Our cat.", "identical") and not gen.prompts


@pytest.mark.slow
def test_real_generator_merges_one_group(folder: Path, tmp_path: Path) -> None:
    from photopoet.models import create_generator

    cfg = load_config(folder / "config.yaml", {"triplets": {"max_new_tokens": 24}})
    gen = create_generator(cfg.models, CacheConfig().resolved_dir())  # converted once into the user cache
    out = tmp_path / "real.jsonl"
    res = build_triplets(folder / "photos", folder / "captions.jsonl", out, cfg, generator=gen, progress=False)
    (cats,) = [r for r in read(out) if CAT_AGAIN in r["captions"]]  # the one group with captions to merge
    assert res.written == 3 and cats["merged_caption"].strip() and cats["merged_by"] in ("generator", "fallback")
    assert cats["merged_caption"][-1] in ".!?"  # a whole sentence, never one cut by max_new_tokens
