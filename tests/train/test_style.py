"""`photopoet train style` on a tiny random Gemma-3-like model: cleaning, split, training, resume, early stopping,
bad lines, and the adapter in the caption writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from style_fakes import CAPTIONS, make_tiny_gemma
from write_fakes import HashEncoder

from photopoet.config import load_config
from photopoet.core.adapters import adapter_digest, check_adapter_dir
from photopoet.errors import AdapterError, ConfigError, StyleTrainError
from photopoet.train.style import PostFeatures, train_style
from photopoet.train.style_data import clean_for_training, is_test_post, load_posts, split_posts

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WORDS = ["river", "campus", "stage", "hills", "market", "portrait", "festival", "lake", "night", "fest"]


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


def _post_ids(n: int) -> list[str]:
    """n post ids, about a quarter of them in the test split (whatever sha1 gives)."""
    return [f"post{i:03d}" for i in range(n)]


def write_data(path: Path, n: int = 16, extra_lines: list[str] | None = None) -> list[str]:
    lines = []
    for i, pid in enumerate(_post_ids(n)):
        cap = CAPTIONS[i % len(CAPTIONS)]
        if i % 3 == 0:
            cap += " Shot by @club.member #photowalk https://example.com/x"
        lines.append(
            json.dumps(
                {
                    "post_id": pid,
                    "event": ["Photowalk", "Fest", "Trip"][i % 3],
                    "labels": [WORDS[i % len(WORDS)]],
                    "caption": cap,
                    "images": [f"{pid}_a.jpg", f"{pid}_b.jpg"],
                }
            )
        )
    lines += extra_lines or []
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def fake_features(n: int = 16) -> dict[str, PostFeatures]:
    enc = HashEncoder()
    out = {}
    for i, pid in enumerate(_post_ids(n)):
        w = WORDS[i % len(WORDS)]
        out[pid] = PostFeatures(concepts=(w, "photo"), vector=enc.encode([f"{w} photo"])[0], n_photos=2)
    return out


def _cfg(tmp_path: Path, **train):
    ts = {"batch_size": 4, "lora_r": 4, "lora_alpha": 8, "eval_max_new_tokens": 8, "learning_rate": 5e-3}
    ts.update(train)
    return load_config(overrides={"cache": {"dir": str(tmp_path / "cache")}, "train_style": ts})


def _train(tmp_path: Path, tiny_gemma: Path, out: Path, cfg, data: Path | None = None, **kw):
    if data is None:
        data = tmp_path / "posts.jsonl"
        write_data(data)
    (tmp_path / "images").mkdir(exist_ok=True)
    logs: list[str] = []
    res = train_style(
        data,
        tmp_path / "images",
        out,
        cfg,
        progress=False,
        generator_source=str(tiny_gemma),
        generator_name="tiny-gemma@test",
        text_encoder=HashEncoder(),
        features=fake_features(),
        echo=logs.append,
        **kw,
    )
    return res, logs


def _weights(d: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(d / "adapter_model.safetensors"))


# ------------------------------------------------------------------------------------------------ data


def test_cleaning_removes_handles_urls_hashtags_credits_and_trailing_dots() -> None:
    raw = "Echoes of Sikkim, where streets hum......\nCaptured by: @a.b @cd\n#sikkim #travel visit www.club.in ."
    text, removed = clean_for_training(raw)
    assert text == "Echoes of Sikkim, where streets hum. visit."
    assert removed["handles"] == ["@a.b", "@cd"]
    assert removed["hashtags"] == ["#sikkim", "#travel"]
    assert removed["urls"] == ["www.club.in"]
    assert removed["credits"] and removed["trailing_dots"]
    assert clean_for_training("A night of rhythm, captured live on 12th April. Event credit @x")[0] == (
        "A night of rhythm, captured live on 12th April."
    )
    text, removed = clean_for_training("Follow us on Instagram. Drop your reviews at montage@iitg.ac.in")
    assert text == "Follow us on Instagram. Drop your reviews at" and removed["emails"] == ["montage@iitg.ac.in"]
    assert not removed["urls"] and not removed["handles"]
    long = "One sentence here. " * 30
    cut, removed = clean_for_training(long, max_chars=100)
    assert len(cut) <= 100 and cut.endswith("here.") and removed["cut"]


def test_bad_lines_are_reported_with_file_and_line_and_skipped(tmp_path: Path) -> None:
    data = tmp_path / "posts.jsonl"
    good = write_data(
        data,
        n=4,
        extra_lines=[
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"caption": "no id here at all", "images": ["x.jpg"]}),
            json.dumps({"post_id": "post000", "caption": "the same id again, twice", "images": ["x.jpg"]}),
            json.dumps({"post_id": "z1", "caption": "images missing entirely"}),
            json.dumps({"post_id": "z2", "caption": "@only #tags", "images": ["x.jpg"]}),
        ],
    )
    posts, report = load_posts(data)
    assert [p.post_id for p in posts] == _post_ids(4)
    assert len(report.skipped) == 6
    for i, s in enumerate(report.skipped):
        assert s.startswith(f"{data}:{len(good) - 6 + i + 1}: ")
    assert "not JSON" in report.skipped[0] and "already on line 1" in report.skipped[3]
    rep = report.to_json()
    assert rep["removed"]["handles"]["pieces"] == 2 and rep["removed"]["hashtags"]["posts"] == 2
    assert "#photowalk" in posts[0].hashtags and "@" not in posts[0].caption and "http" not in posts[0].caption


def test_split_is_by_post_and_keeps_the_benchmark_test_split(tmp_path: Path) -> None:
    data = tmp_path / "posts.jsonl"
    write_data(data, n=40)
    posts, _ = load_posts(data)
    parts = split_posts(posts, 0.25, seed=0)
    ids = {k: {p.post_id for p in v} for k, v in parts.items()}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert ids["train"] | ids["val"] | ids["test"] == {p.post_id for p in posts}
    assert ids["test"] == {p.post_id for p in posts if is_test_post(p.post_id)} and ids["test"]
    assert len(ids["val"]) == round(0.25 * (40 - len(ids["test"])))
    assert split_posts(posts, 0.25, seed=0) == parts and split_posts(posts, 0.25, seed=1) != parts


def test_prompts_carry_the_data_file_labels_or_those_run_gives_the_photos(tmp_path: Path, tiny_gemma: Path) -> None:
    from dataclasses import replace

    from transformers import AutoTokenizer

    from photopoet.stages.write.style import topic_text
    from photopoet.train.style import build_examples

    data = tmp_path / "posts.jsonl"
    write_data(data, n=6)
    posts, _ = load_posts(data)
    feats = {pid: replace(f, labels=("night", "people")) for pid, f in fake_features(6).items()}
    tok = AutoTokenizer.from_pretrained(str(tiny_gemma))
    by_run = build_examples(posts, feats, tok, 256, labels="run")
    by_data = build_examples(posts, feats, tok, 256)  # the default: the data file's labels
    for post, r, d in zip(posts, by_run, by_data, strict=True):
        assert r.item.labels == ("night", "people") and d.item.labels == post.labels[:3] != r.item.labels
        assert r.prompt.endswith(f"Topic: {topic_text(post.event, ('night', 'people'), r.item.concepts)}\nCaption:")
        assert d.prompt.endswith(f"Topic: {topic_text(post.event, post.labels, d.item.concepts)}\nCaption:")
    with pytest.raises(ConfigError, match="train_style.labels"):
        load_config(overrides={"train_style": {"labels": "hashtags"}})


# -------------------------------------------------------------------------------------------- training


def test_trains_writes_best_and_last_and_says_nothing_to_do_after(tmp_path: Path, tiny_gemma: Path) -> None:
    out = tmp_path / "run"
    cfg = _cfg(tmp_path, epochs=2)
    res, logs = _train(tmp_path, tiny_gemma, out, cfg)
    n_train = res.split["train"]
    assert res.step == res.total_steps == 2 * -(-n_train // 4)
    for d in ("best", "last"):
        check_adapter_dir(out / d)
        meta = json.loads((out / d / "photopoet_adapter.json").read_text())
        assert meta["generator"] == "tiny-gemma@test" and meta["prompt_examples"] == 0 and meta["labels"] == "data"
    assert {"optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"} <= {
        p.name for p in (out / "last").iterdir()
    }
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [0.0, 1.0, 2.0]  # the untrained adapter, then each epoch
    for h in hist:
        assert {"val_loss", "bleu1", "bleu2", "bleu4", "rougeL", "agreement"} <= set(h)
        assert 0 <= h["rougeL"] <= 1 and h["val_loss"] > 0
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]  # it learnt something about the captions
    split = json.loads((out / "split.json").read_text())
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    assert (out / "cleaning.json").is_file() and list((out / "samples").glob("step-*.jsonl"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders left
    # the same command again: nothing to do, nothing changed
    before = _weights(out / "last")
    res2, logs2 = _train(tmp_path, tiny_gemma, out, cfg)
    assert res2.step == res.step and any("nothing to do" in x for x in logs2)
    assert all(np.array_equal(before[k], v) for k, v in _weights(out / "last").items())


def test_resume_after_a_stop_matches_an_uninterrupted_run(tmp_path: Path, tiny_gemma: Path) -> None:
    cfg = _cfg(tmp_path, epochs=2, save_steps=100)
    full, _ = _train(tmp_path, tiny_gemma, tmp_path / "full", cfg)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, tiny_gemma, tmp_path / "cut", cfg, stop_after=3)  # mid-epoch, between save points
    state = json.loads((tmp_path / "cut" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3
    res, logs = _train(tmp_path, tiny_gemma, tmp_path / "cut", cfg)
    assert any("resuming" in x and "step 3" in x for x in logs)
    assert res.resumed_from == 3 and res.step == full.step
    a, b = _weights(tmp_path / "full" / "last"), _weights(tmp_path / "cut" / "last")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert [h["step"] for h in res.history] == [h["step"] for h in full.history]


def test_ctrl_c_finishes_the_step_saves_last_and_restores_the_handler(
    tmp_path: Path, tiny_gemma: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    import photopoet.train.style as style

    real, calls = style._batch_loss, []

    def loss_then_ctrl_c(model, *a):
        calls.append(model.training)
        if sum(calls) == 2:  # the second training step: Ctrl-C arrives in the middle of it
            os.kill(os.getpid(), signal.SIGINT)
        return real(model, *a)

    monkeypatch.setattr(style, "_batch_loss", loss_then_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="after step 2"):
        _train(tmp_path, tiny_gemma, tmp_path / "run", _cfg(tmp_path, epochs=2, save_steps=100))
    assert signal.getsignal(signal.SIGINT) is before
    assert json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())["step"] == 2


def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path, tiny_gemma: Path) -> None:
    out = tmp_path / "run"
    _train(tmp_path, tiny_gemma, out, _cfg(tmp_path, max_steps=1))
    with pytest.raises(StyleTrainError, match="other settings"):
        _train(tmp_path, tiny_gemma, out, _cfg(tmp_path, max_steps=2, lora_r=8))


def test_early_stopping(tmp_path: Path, tiny_gemma: Path) -> None:
    # a learning rate of zero never improves the validation loss: stops after `patience` epochs
    cfg = _cfg(tmp_path, epochs=6, learning_rate=1e-12, warmup_ratio=0.0, metric="val_loss", patience=2)
    res, logs = _train(tmp_path, tiny_gemma, tmp_path / "run", cfg)
    per_epoch = -(-res.split["train"] // 4)
    assert res.stopped_early and res.step == 2 * per_epoch < res.total_steps
    assert res.best["step"] == 0 and any("early stopping" in x for x in logs)
    assert any(x.startswith("warning: no epoch scored a better val_loss") for x in logs)  # best/ is the base model


def test_loss_on_caption_tokens_equals_the_full_model_loss(tiny_gemma: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from photopoet.train.style import _batch_loss, _collate, build_examples
    from photopoet.train.style_data import PostRecord

    tok = AutoTokenizer.from_pretrained(tiny_gemma)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gemma), LoraConfig(r=2, target_modules=["q_proj"]))
    posts = [PostRecord(f"p{i}", c, c, "Fest", ("stage",), ("a.jpg",), (), i) for i, c in enumerate(CAPTIONS[:3])]
    ex = build_examples(posts, {}, tok, 64)
    assert all(len(e.labels) == len(e.input_ids) for e in ex)
    n_caption = [sum(x != -100 for x in e.labels) for e in ex]
    assert all(n > 3 for n in n_caption) and ex[0].input_ids[-1] == tok.eos_token_id
    ids, att, lab = _collate(ex, tok.pad_token_id)
    with torch.no_grad():
        s, n = _batch_loss(model, ids, att, lab)
        ref = model(input_ids=ids, attention_mask=att, labels=lab).loss  # mean over the same tokens
    assert n == sum(n_caption)  # every caption token is predicted
    assert float(s / n) == pytest.approx(float(ref), rel=1e-5)


def test_needs_train_and_validation_posts(tmp_path: Path, tiny_gemma: Path) -> None:
    data = tmp_path / "one.jsonl"
    write_data(data, n=1)
    with pytest.raises(StyleTrainError, match="at least one of each"):
        _train(tmp_path, tiny_gemma, tmp_path / "run", _cfg(tmp_path), data=data)


# -------------------------------------------------------------------------------------- using the adapter


def test_adapter_loads_in_the_caption_writer_and_changes_its_output(tmp_path: Path, tiny_gemma: Path) -> None:
    from photopoet.models._lm import TransformersCausalLM
    from photopoet.stages.write.caption import CaptionInput
    from photopoet.stages.write.texts import TextWriter, _texts_key

    out = tmp_path / "run"
    res, _ = _train(tmp_path, tiny_gemma, out, _cfg(tmp_path, epochs=3, learning_rate=2e-2, metric="val_loss"))
    assert res.best["step"] > 0
    best = out / "best"
    cfg = load_config(overrides={"caption": {"mode": "generative", "adapter": str(best), "min_chars": 1}})
    base = TransformersCausalLM("tiny-gemma@test", str(tiny_gemma))
    writer = TextWriter(cfg, tmp_path, text_encoder=HashEncoder(), generator=base)
    item = CaptionInput(id="p", event="Photowalk", labels=("river",), concepts=("river", "photo"), n_photos=1)
    assert writer.captions.generator is not base
    assert writer.captions.generator.name.startswith("tiny-gemma@test+lora_")
    adapted = writer.captions.generator.generate(["Topic: Photowalk; river\nCaption:"], max_new_tokens=12)
    plain = base.generate(["Topic: Photowalk; river\nCaption:"], max_new_tokens=12)
    assert adapted != plain  # the adapter changes what the generator writes
    assert base.generate(["Topic: Photowalk; river\nCaption:"], max_new_tokens=12) == plain  # base left alone
    assert writer.captions.write(item).mode.startswith("generative")
    # a different adapter never reuses another's cached texts
    _train(tmp_path, tiny_gemma, tmp_path / "run2", _cfg(tmp_path, max_steps=1))
    other = tmp_path / "run2" / "last"
    assert adapter_digest(best) != adapter_digest(other)
    from photopoet.records import Photo, Post, Understood

    photo = Photo(path="a.jpg", sha256="0" * 64, width=1, height=1, format="JPEG", size_bytes=1)
    by_path = {"a.jpg": Understood(photo=photo)}
    post = Post(id="p", photos=["a.jpg"], cover="a.jpg")
    cfg_other = load_config(overrides={"caption": {"mode": "generative", "adapter": str(other), "min_chars": 1}})
    cfg_none = load_config(overrides={"caption": {"mode": "generative", "min_chars": 1}})
    keys = {_texts_key(post, by_path, "E", c) for c in (cfg, cfg_other, cfg_none)}
    assert len(keys) == 3


def test_bad_adapter_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="caption.adapter.*no such adapter folder"):
        load_config(overrides={"caption": {"adapter": str(tmp_path / "nope")}})
    (tmp_path / "run" / "best").mkdir(parents=True)
    with pytest.raises(AdapterError, match="use its best/"):
        check_adapter_dir(tmp_path / "run")
