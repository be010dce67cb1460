"""`photopoet caption` / `photopoet haiku` JSON shapes, and `run` filling caption, hashtags and haiku.

The image encoder and text encoder are the real offline ones; the generator is scripted except in the one
test marked slow (the real Gemma, a few tokens).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner
from write_fakes import ScriptedGenerator

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.stages.write.haiku import scans

runner = CliRunner()

HAIKU_OUT = "\ndark roast in a cup\nsteam curls over the white rim\nthe morning begins\n\nPhoto:"


@pytest.fixture
def photos(tmp_path: Path, images) -> list[Path]:
    paths = []
    for name in ("coffee", "chelsea"):
        p = tmp_path / f"{name}.jpg"
        images[name].save(p, quality=90)
        paths.append(p)
    return paths


@pytest.fixture
def fake_generator(monkeypatch: pytest.MonkeyPatch):
    gen = ScriptedGenerator([HAIKU_OUT, "\nnot\na haiku\n"])
    monkeypatch.setattr("photopoet.models.create_generator", lambda *a, **k: gen)
    return gen


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_caption_template_json_shape(photos):
    out = _json(runner.invoke(app, ["caption", str(photos[0]), "--mode", "template", "--event", "Cafe Week", "--json"]))
    assert set(out) == {"caption", "hashtags", "mode", "score"}
    assert out["mode"] == "template" and "Cafe Week" in out["caption"] and "#CafeWeek" in out["hashtags"]
    assert isinstance(out["score"], float) and -1 <= out["score"] <= 1


def test_caption_non_latin_labels_and_event(photos):
    args = ["caption", *map(str, photos), "--mode", "template", "--event", "中秋 🎉", "--labels", "美食, 猫", "--json"]
    out = _json(runner.invoke(app, args))
    assert out["caption"].startswith("") and "中秋 🎉: 美食, 猫." in out["caption"] and "Swipe" in out["caption"]
    assert "#中秋" in out["hashtags"]


def test_caption_generative_fallback_and_mode_check(photos, fake_generator):
    fake_generator.outputs = ["@someone #tag https://x.com"]
    out = _json(runner.invoke(app, ["caption", str(photos[0]), "--mode", "generative", "--labels", "", "--json"]))
    assert out["mode"] == "generative:template" and out["caption"] == out["caption"].strip()
    assert "@" not in out["caption"] and fake_generator.prompts
    bad = runner.invoke(app, ["caption", str(photos[0]), "--mode", "poem"])
    assert bad.exit_code == 2 and "--mode must be" in bad.output


def test_haiku_json_shape(photos, fake_generator):
    out = _json(runner.invoke(app, ["haiku", str(photos[0]), "--json"]))
    assert set(out) == {"lines", "score"}
    assert out["lines"] == ["dark roast in a cup", "steam curls over the white rim", "the morning begins"]


def test_unreadable_files_are_reported(photos, tmp_path: Path, fake_generator):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    r = runner.invoke(app, ["haiku", str(junk), str(photos[0]), "--json"])
    assert r.exit_code == 0 and "skipped" in r.stderr and "junk.jpg" in r.stderr
    assert len(json.loads(r.stdout)["lines"]) == 3
    r = runner.invoke(app, ["haiku", str(junk), str(tmp_path / "missing.png")])
    assert r.exit_code == 2 and "no readable photo" in r.stderr


def test_one_post_as_files_prints_as_before(photos, tmp_path: Path):
    # only files given: one post, its id the files' names joined (it picks the template opener), and today's output
    from photopoet.stages.write.template import hashtags_for, template_caption, with_swipe_hint

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    args = ["caption", str(photos[0]), str(junk), str(photos[1]), "--mode", "template", "-e", "Cafe Week", "-l", "food"]
    cc = load_config().caption
    templ = template_caption("coffee.jpg|junk.jpg|chelsea.jpg", ["food"], "Cafe Week", 2, cc, swipe=False)
    expect, tags = with_swipe_hint(templ, 2, cc), hashtags_for(["food"], "Cafe Week", cc)
    js = runner.invoke(app, [*args, "--json"])
    doc = _json(js)
    assert js.stdout == json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    assert doc == {"caption": expect, "hashtags": tags, "mode": "template", "score": doc["score"]}
    txt = runner.invoke(app, args)
    assert txt.exit_code == 0 and txt.stdout == f"{expect}\n{' '.join(tags)}\n"
    err = txt.stderr.splitlines()
    assert len(err) == 2 and err[0].startswith(f"skipped {junk}: not a readable image")
    assert re.fullmatch(r"\(template, image-text agreement \d\.\d{3}\)", err[1])


def _shoot(tmp_path: Path, photos) -> Path:
    """The test photos moved into one folder, as a run takes them."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    for p in photos:
        p.rename(folder / p.name)
    return folder


def test_run_fills_caption_hashtags_and_haiku(tmp_path: Path, photos, fake_generator):
    from photopoet.pipeline import run

    folder = _shoot(tmp_path, photos)
    fake_generator.outputs = [HAIKU_OUT]
    cfg = load_config(
        overrides={
            "caption": {"event": "Cafe Week", "agreement_threshold": 1.0, "candidates": 1},
            "haiku": {"candidates": 1},
        }
    )
    res = run(folder, tmp_path / "out", cfg, progress=False)
    doc = json.loads((tmp_path / "out" / "posts.json").read_text(encoding="utf-8"))
    assert res.posts and len(doc["posts"]) == len(res.posts)
    for post in doc["posts"]:
        assert post["caption_mode"] in ("hybrid:template",)  # threshold 1.0: no generated caption passes
        assert "Cafe Week" in post["caption"] and "#CafeWeek" in post["hashtags"]
        assert len(post["haiku"]) == 3 and scans(post["haiku"])
        assert {"caption_agreement", "haiku_agreement"} <= set(post["scores"])


@pytest.mark.slow
def test_real_gemma_haiku_cli(photos, tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("haiku:\n  candidates: 2\n  max_new_tokens: 20\n", encoding="utf-8")
    out = _json(runner.invoke(app, ["haiku", str(photos[0]), "--config", str(cfg), "--json"]))
    assert len(out["lines"]) == 3 and scans(out["lines"]) and isinstance(out["score"], float)


def test_rerun_reuses_written_texts(tmp_path: Path, photos, fake_generator):
    # a rerun (or a run after a crash) does not generate again the texts of posts it already wrote
    from photopoet.pipeline import run

    folder = _shoot(tmp_path, photos)
    fake_generator.outputs = [HAIKU_OUT]
    cfg = load_config(
        overrides={
            "cache": {"dir": str(tmp_path / "cache")},
            "caption": {"event": "Cafe Week", "candidates": 1},
            "haiku": {"candidates": 1},
        }
    )
    run(folder, tmp_path / "out1", cfg, progress=False)
    first = json.loads((tmp_path / "out1" / "posts.json").read_text(encoding="utf-8"))["posts"]
    asked = len(fake_generator.prompts)
    assert asked > 0
    run(folder, tmp_path / "out2", cfg, progress=False)
    second = json.loads((tmp_path / "out2" / "posts.json").read_text(encoding="utf-8"))["posts"]
    assert len(fake_generator.prompts) == asked
    keys = ("caption", "hashtags", "haiku", "caption_mode", "scores")
    assert [{k: p[k] for k in keys} for p in second] == [{k: p[k] for k in keys} for p in first]
    # another event is another text: generated again
    run(folder, tmp_path / "out3", cfg.model_copy(update={"caption": cfg.caption.model_copy(update={"event": "X"})}))
    assert len(fake_generator.prompts) > asked
