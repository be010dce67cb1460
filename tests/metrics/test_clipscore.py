"""CLIPScore and RefCLIPScore (Hessel et al. 2021) on a tiny random CLIP, by the hub tier's code path and by
transformers directly; the offline tier's score named for what it is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import make_tiny_clip
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import CacheConfig, ModelsConfig
from photopoet.metrics.clipscore import CLIP_W, ImageTextScorer, clip_s, prefixed, ref_clip_s

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def test_formulas_by_hand() -> None:
    img = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    txt = np.array([[1.0, 1.0], [-1.0, 0.2], [0.0, 1.0]])
    s = clip_s(img, txt)
    assert s == pytest.approx([2.5 / np.sqrt(2), 0.0, 2.5])  # cosine, clipped at 0, times w = 2.5
    refs = [np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[1.0, -0.2]]), np.array([[0.0, -1.0]])]
    r = ref_clip_s(s, txt, refs)
    # item 0: text-ref max cos 1 -> H-mean(1.768, 1); item 1: CLIP-S 0 -> 0; item 2: text-ref cos -1 -> 0
    assert r == pytest.approx([2 * s[0] * 1.0 / (s[0] + 1.0), 0.0, 0.0])
    assert prefixed(["a cat"]) == ["A photo depicts a cat"]
    with pytest.raises(ValueError, match="do not pair up"):
        clip_s(img, txt[:2])
    with pytest.raises(ValueError, match="no reference"):
        ref_clip_s(s, txt, [refs[0], refs[1], np.zeros((0, 2))])


def _direct_clip_scores(model_dir: Path, images: list[Image.Image], cands: list[str], refs: list[list[str]]):
    """CLIP-S and RefCLIP-S computed straight from transformers' CLIPModel, as the paper defines them."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    from photopoet.models.hub import _load_image_processor

    model = CLIPModel.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    proc = _load_image_processor(str(model_dir))

    def text(ts: list[str]) -> np.ndarray:
        enc = tok(["A photo depicts " + t for t in ts], padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model.get_text_features(**enc)
        out = getattr(out, "pooler_output", out)
        return out.numpy().astype(np.float64)

    with torch.no_grad():
        px = torch.from_numpy(np.asarray(proc(images=images, return_tensors="np")["pixel_values"]))
        iv = model.get_image_features(pixel_values=px)
    iv = getattr(iv, "pooler_output", iv).numpy().astype(np.float64)
    tv = text(cands)

    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    cs = [CLIP_W * max(cos(i, t), 0.0) for i, t in zip(iv, tv, strict=True)]
    rcs = []
    for c, t, rs in zip(cs, tv, refs, strict=True):
        m = max(max(cos(t, r) for r in text(rs)), 0.0)
        rcs.append(2 * c * m / (c + m) if c + m > 0 else 0.0)
    return cs, rcs


def test_hub_clip_scores_match_a_direct_computation(tiny_clip: Path, images: dict[str, Image.Image]) -> None:
    cfg = ModelsConfig(tier="hub", image=str(tiny_clip), text=str(tiny_clip))
    scorer = ImageTextScorer(cfg, Path("/nonexistent-cache-not-used"))
    imgs = [images["coffee"], images["chelsea"], images["rocket"]]
    cands = ["a cat", "a dog", "cat cat dog"]
    refs = [["a dog", "cat"], ["a cat"], ["dog", "a cat", "a dog"]]
    out = scorer.score(imgs, cands, refs)
    assert out["scale"] == f'CLIP-S, w=2.5, prefix "A photo depicts", model={tiny_clip}'
    assert "agreement" not in out and out["n"] == 3
    cs, rcs = _direct_clip_scores(tiny_clip, imgs, cands, refs)
    assert out["per_item"]["clip_score"] == pytest.approx(cs, abs=1e-5)
    assert out["per_item"]["ref_clip_score"] == pytest.approx(rcs, abs=1e-5)
    assert out["clip_score"] == pytest.approx(np.mean(cs), abs=1e-5)
    assert all(0 <= s <= CLIP_W for s in cs) and len(set(np.round(cs, 6))) > 1
    with pytest.raises(ValueError, match="pair up"):
        scorer.score(imgs[:2], cands)


def test_eval_text_with_photos_on_the_hub_tier(tiny_clip: Path, images: dict, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    images["coffee"].save(photos / "p1.jpg")
    images["chelsea"].save(photos / "p2.png")
    (photos / "p3.jpg").write_bytes(b"not a jpeg")
    preds = [{"id": f"p{i}", "text": t} for i, t in enumerate(["a cat", "a dog", "a cat", "a dog"], start=1)]
    refs = [{"id": f"p{i}", "refs": ["a cat", "dog"]} for i in range(1, 5)]
    pf, rf = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    pf.write_text("".join(json.dumps(r) + "\n" for r in preds))
    rf.write_text("".join(json.dumps(r) + "\n" for r in refs))
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(f"models:\n  tier: hub\n  image: {tiny_clip}\n  text: {tiny_clip}\n")
    per = tmp_path / "per.jsonl"
    args = ["eval", "text", "-p", str(pf), "-r", str(rf), "-t", "none", "--images", str(photos), "-c", str(cfg)]
    res = CliRunner().invoke(app, [*args, "--json", "--per-item", str(per)])
    assert res.exit_code == 0, res.output
    it = json.loads(res.stdout)["image_text"]
    assert it["n"] == 2 and it["scale"].startswith("CLIP-S, w=2.5") and 0 <= it["clip_score"] <= 2.5
    assert it["ids_without_photo"] == ["p4"] and "p3.jpg: not a readable image" in it["unreadable_photos"][0]
    assert "p3.jpg: not a readable image" in res.stderr
    rows = {r["id"]: r for r in map(json.loads, per.read_text().splitlines())}
    assert set(rows["p1"]) >= {"rougeL", "cider", "clip_score", "ref_clip_score"} and "clip_score" not in rows["p4"]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "clip_score" in table.stdout and "CLIP-S, w=2.5" in table.stdout


@pytest.mark.slow
def test_offline_tier_says_it_is_not_clipscore(images: dict[str, Image.Image]) -> None:
    # the user cache, as a run uses it: ConSE's class-name matrix is embedded once (a minute) and reused
    scorer = ImageTextScorer(ModelsConfig(), CacheConfig().resolved_dir())
    out = scorer.score([images["coffee"], images["chelsea"]], ["a cup of coffee", "a cup of coffee"], [["coffee"]] * 2)
    assert "clip_score" not in out and "ref_clip_score" not in out
    assert "not CLIPScore" in out["scale"] and "ConSE" in out["scale"]
    a = out["per_item"]["agreement"]
    assert a[0] > a[1]  # the coffee photo agrees better with "a cup of coffee" than the cat photo does
    assert out["ref_similarity"] > 0.5
