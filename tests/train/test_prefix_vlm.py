"""`photopoet train prefix-vlm` on CPU: a tiny Gemma-3-like LM that knows two captions but not which goes with
which picture; the projection learns to make the image decide. Resume after a stop, bad data lines, refusals,
and the two commands end to end on real photos through the offline image encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.errors import ConfigError, StyleTrainError
from photopoet.train.prefix_vlm import (
    PhotoFeatures,
    _load_lm,
    evaluate_posts,
    load_prefix_vlm,
    prompt_ids,
    train_prefix_vlm,
)
from photopoet.train.style_data import is_test_post

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()

A = "red sunset over the river ghats"
B = "night lights on the campus lake"
SMALL = {"image_tokens": 2, "proj_hidden": 64, "contrastive_dim": 16, "batch_size": 4, "eval_max_new_tokens": 10}


def _pretrain_two_captions(folder: Path, prompt: str, image_tokens: int) -> None:
    """Teach the tiny LM both captions after the prompt (placeholders read as padding), so that without an
    image it cannot tell which one to write: only the image can decide."""
    import torch

    tok, lm, pid = _load_lm(str(folder), "cpu")
    p = prompt_ids(tok, prompt, 1, pid, image_tokens)
    rows = [tok(" " + cap, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for cap in (A, B)]
    n = max(map(len, rows))
    ids = torch.tensor([p + r + [tok.pad_token_id] * (n - len(r)) for r in rows])
    lab = torch.tensor([[-100] * len(p) + r + [-100] * (n - len(r)) for r in rows])
    att = torch.tensor([[1] * (len(p) + len(r)) + [0] * (n - len(r)) for r in rows])
    ids = ids.masked_fill(ids == pid, tok.pad_token_id)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    lm.train()
    for _ in range(150):
        loss = lm(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.save_pretrained(folder)


@pytest.fixture(scope="module")
def two_caption_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tiny_models.make_tiny_gemma(tmp_path_factory.mktemp("lm"), [A, B] * 5 + ["Photos: Caption:"])
    _pretrain_two_captions(d, load_config(None).train_vlm.prompt, SMALL["image_tokens"])
    return d


def _posts(d: Path, n: int = 24, bad_lines: bool = False) -> tuple[Path, PhotoFeatures]:
    """n posts of two photos each, alternating two kinds of picture (A: near one direction, B: another)."""
    rng = np.random.default_rng(0)
    centre = {0: rng.normal(size=48), 1: rng.normal(size=48)}
    vec: dict[str, np.ndarray] = {}
    lines = []
    for i in range(n):
        kind = i % 2
        names = []
        for j in range(2):
            v = centre[kind] + 0.4 * rng.normal(size=48)
            vec[f"p{i}_{j}.jpg"] = (v / np.linalg.norm(v)).astype(np.float32)
            names.append(f"p{i}_{j}.jpg")
        if bad_lines and i == 20:
            names.append("gone.jpg")  # one of its three photos is not in the folder
        lines.append(json.dumps({"post_id": f"q{i}", "caption": A if kind == 0 else B, "images": names}))
    if bad_lines:
        lines.insert(2, "{not json")
        lines.insert(5, json.dumps({"post_id": "nocap", "images": ["p0_0.jpg"]}))
        lines.append(json.dumps({"post_id": "missing", "caption": "photos that are not there", "images": ["x.jpg"]}))
    data = d / "posts.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "img").mkdir(exist_ok=True)
    return data, PhotoFeatures(vec, "test:synthetic", 48)


def _cfg(lm: Path, **over):
    return load_config(None, {"train_vlm": {"lm": str(lm), **SMALL, **over}})


def test_the_image_decides_the_caption_after_training(two_caption_lm: Path, tmp_path: Path) -> None:
    data, feats = _posts(tmp_path)
    cfg = _cfg(two_caption_lm, epochs=12, learning_rate=0.01, patience=50)
    lines: list[str] = []
    res = train_prefix_vlm(data, tmp_path / "img", tmp_path / "out", cfg, features=feats, progress=False,
                           echo=lines.append)  # fmt: skip
    h = res.history
    assert h[0]["step"] == 0 and res.step == h[-1]["step"] == res.total_steps
    best = res.best["scores"]
    assert best["val_loss"] < h[0]["val_loss"] - 0.3  # the projection learned
    # another post's photos make a caption less likely: the trained model reads the image (untrained: barely)
    assert best["image_gap"] > 0.05 > h[0]["image_gap"]
    assert best["val_nce"] < h[0]["val_nce"]
    assert any("trainable weights" in x and "(frozen)" in x for x in lines)
    # held-out posts (never seen in training): the photo picks the right one of the two captions
    m, samples = evaluate_posts(tmp_path / "out" / "best", data, tmp_path / "img", cfg, features=feats, progress=False)
    assert m["n"] == len(samples) == sum(is_test_post(f"q{i}") for i in range(24)) >= 4
    assert {s["reference"] for s in samples} == {A, B}
    assert [s["generated"] for s in samples] == [s["reference"] for s in samples]
    assert m["rougeL"] > 0.99 and m["r_at_1"] > m["chance_r_at_1"]


def test_the_untrained_projection_cannot_tell_the_captions_apart(two_caption_lm: Path, tmp_path: Path) -> None:
    """The check above is not won by the LM alone: before training, A and B posts get one and the same caption."""
    data, feats = _posts(tmp_path)
    cfg = _cfg(two_caption_lm, max_steps=1, learning_rate=1e-9)
    train_prefix_vlm(data, tmp_path / "img", tmp_path / "out", cfg, features=feats, progress=False, echo=lambda s: 0)
    _, samples = evaluate_posts(tmp_path / "out" / "best", data, tmp_path / "img", cfg, features=feats, progress=False)
    assert len({s["generated"] for s in samples}) == 1


def test_resume_after_a_stop_matches_one_run(two_caption_lm: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    data, feats = _posts(tmp_path)
    cfg = _cfg(two_caption_lm, max_steps=7, save_steps=3, generate_every_eval=False)
    kw = {"features": feats, "progress": False, "echo": lambda s: None}
    train_prefix_vlm(data, tmp_path / "img", tmp_path / "one", cfg, **kw)
    with pytest.raises(KeyboardInterrupt):
        train_prefix_vlm(data, tmp_path / "img", tmp_path / "two", cfg, stop_after=2, **kw)
    st = json.loads((tmp_path / "two" / "last" / "trainer_state.json").read_text())
    assert st["step"] == 2
    said: list[str] = []
    res = train_prefix_vlm(data, tmp_path / "img", tmp_path / "two", cfg, **{**kw, "echo": said.append})
    assert res.resumed_from == 2 and res.step == 7 and any("resuming" in s and "at step 2" in s for s in said)
    a = load_file(str(tmp_path / "one" / "last" / "projector.safetensors"))
    b = load_file(str(tmp_path / "two" / "last" / "projector.safetensors"))
    assert a.keys() == b.keys() and all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)
    one = [json.loads(x) for x in (tmp_path / "one" / "history.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in one] == [r["step"] for r in two]
    assert np.allclose([r["val_loss"] for r in one], [r["val_loss"] for r in two], atol=1e-5)
    # a finished run says so and does nothing; other settings in the same folder are refused
    again = train_prefix_vlm(data, tmp_path / "img", tmp_path / "two", cfg, **kw)
    assert again.step == 7 and again.resumed_from == 7
    with pytest.raises(StyleTrainError, match="holds a run with other settings"):
        train_prefix_vlm(data, tmp_path / "img", tmp_path / "two", _cfg(two_caption_lm, image_tokens=3), **kw)


def test_bad_lines_are_reported_with_their_number_and_skipped(two_caption_lm: Path, tmp_path: Path) -> None:
    data, feats = _posts(tmp_path, bad_lines=True)
    said: list[str] = []
    cfg = _cfg(two_caption_lm, max_steps=1, generate_every_eval=False)
    res = train_prefix_vlm(data, tmp_path / "img", tmp_path / "out", cfg, features=feats, progress=False,
                           echo=said.append)  # fmt: skip
    assert f"skipped {data}:3: not JSON (Expecting property name enclosed in double quotes)" in said
    assert f"skipped {data}:6: post nocap: no 'caption' text" in said
    assert res.step == 1 and sum(res.split.values()) == 25  # 24 good posts and "missing"
    assert not is_test_post("missing") and not is_test_post("q20")  # both are read in training
    assert "warning: post missing: none of its 1 images is in the images folder; left out" in said
    assert any(s.startswith("warning: post q20: 1 of 3 images not found") for s in said)
    assert sum("warning" in s for s in said) == 2


def test_refusals_name_the_reason(two_caption_lm: Path, tmp_path: Path) -> None:
    data, feats = _posts(tmp_path)
    cfg = _cfg(two_caption_lm, max_steps=1, generate_every_eval=False)
    with pytest.raises(StyleTrainError, match="no such images folder"):
        train_prefix_vlm(data, tmp_path / "nope", tmp_path / "out", cfg, features=feats, progress=False)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{}\n")
    with pytest.raises(StyleTrainError, match="no usable post"):
        train_prefix_vlm(empty, tmp_path / "img", tmp_path / "out", cfg, features=feats, progress=False)
    train_prefix_vlm(data, tmp_path / "img", tmp_path / "out", cfg, features=feats, progress=False, echo=lambda s: 0)
    with pytest.raises(StyleTrainError, match="trained on test:synthetic image features, but this config gives other"):
        load_prefix_vlm(tmp_path / "out" / "best", cfg, image_encoder="other")
    with pytest.raises(StyleTrainError, match="not a prefix-VLM folder"):
        load_prefix_vlm(tmp_path, cfg)
    with pytest.raises(ConfigError, match="images"):
        load_config(None, {"train_vlm": {"prompt": "no slot"}})


def test_train_and_eval_commands_on_real_photos(two_caption_lm: Path, tmp_path: Path, images) -> None:
    """End to end: the offline image encoder's features of real photos (through the run cache), the tiny LM."""
    img = tmp_path / "images"
    img.mkdir()
    names = list(images)
    for n in names:
        images[n].resize((160, 120)).save(img / f"{n}.jpg", quality=85)
    data = tmp_path / "posts.jsonl"
    rows = [{"post_id": f"c{i}", "caption": (A, B)[i % 2], "images": [f"{names[i % len(names)]}.jpg"]}
            for i in range(12)]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + "oops\n", encoding="utf-8")
    out = tmp_path / "vlm"
    args = ["train", "prefix-vlm", "--data", str(data), "--images", str(img), "--out", str(out),
            "--lm", str(two_caption_lm), "--image-tokens", "2", "--max-steps", "2", "--quiet"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"skipped {data}:13: not JSON" in res.output and "1280-d" in res.output  # EfficientNet-Lite0 features
    assert "step 2 of 2" in res.stdout and (out / "best" / "projector.safetensors").is_file()
    preds = tmp_path / "preds.jsonl"
    ev = runner.invoke(app, ["eval", "prefix-vlm", "--model", str(out / "best"), "--data", str(data), "--images",
                             str(img), "--split", "all", "--out", str(preds), "--json", "--quiet"])  # fmt: skip
    assert ev.exit_code == 0, ev.output
    m = json.loads(ev.stdout.strip().splitlines()[-1])
    assert m["split"] == "all" and m["n"] == 12 and 0 <= m["rougeL"] <= 1
    assert m["chance_r_at_1"] == pytest.approx(1 / 12)
    got = [json.loads(x) for x in preds.read_text().splitlines()]
    assert len(got) == 12 and all(isinstance(g["generated"], str) for g in got)
    bad = runner.invoke(app, ["eval", "prefix-vlm", "-m", str(tmp_path), "--data", str(data), "--images", str(img)])
    assert bad.exit_code == 2 and "not a prefix-VLM folder" in bad.output
