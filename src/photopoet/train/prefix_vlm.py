"""`photopoet train prefix-vlm`: a small vision-language model grown from a text LM (the research model).

What it is (a prefix captioner in the manner of ClipCap, Mokady et al. 2021, with LLaVA-style placeholder
tokens, Liu et al. 2023):

* **frozen image encoder**: the run's own (EfficientNet-Lite0 offline, CLIP on the hub tier). Its L2-normalised
  features come from the run cache (the ``understand`` stage), so no photo is encoded twice;
* **projection**: an MLP from the feature size to ``image_tokens`` x the LM's hidden size, its output scaled to
  the RMS of the LM's own token embeddings (a fixed number measured once) so image tokens start at the size
  the LM expects;
* **placeholders**: the prompt (``train_vlm.prompt``) holds one ``<image>`` per photo; each becomes
  ``image_tokens`` placeholder positions whose input embeddings are replaced by the projected image tokens;
* **frozen LM**: the run's generator (Gemma 3 270M offline) or any causal LM folder / id (``train_vlm.lm``);
* **loss**: the LM's cross-entropy on the caption tokens, plus ``contrastive_weight`` x a symmetric InfoNCE
  (learnable temperature, CLIP's form) between the image (a linear head on the frozen features, mean over a
  post's photos) and the LM's last hidden state at the placeholders (mean over them, through a linear head).
  The LM loss alone lets a frozen LM trained on a few hundred captions settle on a projection it can ignore
  (one caption for every picture); the contrastive term makes the LM's reading of the image tokens tell the
  images of a batch apart. ``benchmarks/prefix_vlm_eval.py`` measures both settings.

Only the projection and the two heads are trained (a few million weights with Gemma's 640-d hidden size). The
training loop follows ``train style``: split by post (the fixed test quarter is never used here), validation
each epoch (LM loss, InfoNCE, image->text retrieval among the validation posts, the loss gap when images are
swapped, and generated captions' BLEU / ROUGE-L), early stopping on ``train_vlm.metric``, ``OUT/best`` and
``OUT/last`` swapped in atomically, and a rerun of the same command resumes from ``OUT/last``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from photopoet.config import Config
from photopoet.core.files import atomic_write_json, atomic_write_text
from photopoet.errors import StyleTrainError
from photopoet.train.loop import STATE_FILE, StopOnSigint, recover, rng_state, round_metric, set_rng_state, swap_in
from photopoet.train.style import caption_scores
from photopoet.train.style_data import CleaningReport, PostRecord, load_posts, split_posts

logger = logging.getLogger(__name__)

PLACEHOLDER = "<image>"
META_FILE = "prefix_vlm.json"
WEIGHTS_FILE = "projector.safetensors"
LOWER_IS_BETTER = {"val_loss", "val_nce"}
METRICS = ("val_loss", "val_nce", "image_gap", "r_at_1", "rougeL", "bleu1", "bleu4")


# ------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PhotoFeatures:
    """Frozen image features by file name, and the cache key of the encoder that made them."""

    vectors: dict[str, np.ndarray]
    encoder: str
    dim: int


@dataclass
class VLMExample:
    post: PostRecord
    photos: tuple[str, ...]  # file names whose features fill the placeholders, in order
    feats: np.ndarray  # [n_photos, D]
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    prompt_len: int = 0


def photo_features(images_dir: Path, cfg: Config, *, progress: bool = True) -> PhotoFeatures:
    """The run's frozen image features for every photo of ``images_dir`` (through the run cache)."""
    from photopoet.errors import RunError
    from photopoet.pipeline import understand_folder

    try:
        _, und = understand_folder(images_dir, cfg, progress=progress)
    except RunError as e:
        raise StyleTrainError(str(e)) from None
    vecs = {Path(u.photo.path).name: np.asarray(und.features[i], dtype=np.float32) for i, u in enumerate(und.photos)}
    dim = int(und.features.shape[1]) if len(vecs) else 0
    return PhotoFeatures(vecs, f"{cfg.models.tier}:{cfg.models.image}", dim)


def prompt_text(template: str, n_images: int) -> str:
    """The prompt with one ``<image>`` per photo in place of ``{images}``."""
    return template.replace("{images}", " ".join([PLACEHOLDER] * max(n_images, 1)))


def prompt_ids(tok: Any, template: str, n_images: int, placeholder_id: int, image_tokens: int) -> list[int]:
    """Token ids of the prompt, each ``<image>`` expanded to ``image_tokens`` placeholder ids."""
    ids = tok(prompt_text(template, n_images), add_special_tokens=True)["input_ids"]
    out: list[int] = []
    for i in ids:
        out += [placeholder_id] * image_tokens if i == placeholder_id else [i]
    return out


def build_examples(
    posts: Sequence[PostRecord],
    feats: PhotoFeatures,
    tok: Any,
    placeholder_id: int,
    tc: Any,
    *,
    echo: Callable[[str], None] = print,
    with_caption: bool = True,
) -> list[VLMExample]:
    """One example per post with at least one photo found: placeholders for up to ``max_images`` photos, then
    the caption and the end token (labels -100 on the prompt, so the loss is on the caption)."""
    out = []
    eos = tok.eos_token_id
    for p in posts:
        found = tuple(x for x in p.images if x in feats.vectors)
        if not found:
            echo(f"warning: post {p.post_id}: none of its {len(p.images)} images is in the images folder; left out")
            continue
        if len(found) < len(p.images):
            echo(f"warning: post {p.post_id}: {len(p.images) - len(found)} of {len(p.images)} images not found in "
                 "the images folder (or unreadable); the others are used")  # fmt: skip
        names = found[: tc.max_images]
        pi = prompt_ids(tok, tc.prompt, len(names), placeholder_id, tc.image_tokens)
        ti: list[int] = []
        if with_caption:
            ti = tok(" " + p.caption, add_special_tokens=False)["input_ids"][: tc.max_caption_tokens]
            ti += [eos]
        fm = np.stack([feats.vectors[x] for x in names])
        out.append(VLMExample(p, names, fm, pi + ti, [-100] * len(pi) + ti, len(pi)))
    return out


def _collate(batch: Sequence[VLMExample], pad_id: int, device: str):
    """Right-padded ids, attention mask, labels, and the photos' features in placeholder order."""
    import torch

    n = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab = torch.full((len(batch), n), -100, dtype=torch.long)
    att = torch.zeros((len(batch), n), dtype=torch.long)
    for i, e in enumerate(batch):
        k = len(e.input_ids)
        ids[i, :k] = torch.tensor(e.input_ids)
        lab[i, :k] = torch.tensor(e.labels)
        att[i, :k] = 1
    feats = torch.from_numpy(np.concatenate([e.feats for e in batch]).astype(np.float32))
    post_feats = torch.from_numpy(np.stack([e.feats.mean(0) for e in batch]).astype(np.float32))
    return ids.to(device), att.to(device), lab.to(device), feats.to(device), post_feats.to(device)


# ------------------------------------------------------------------------------------------------ model


def _torch_module():
    import torch
    from torch import nn

    class PrefixVLM(nn.Module):
        """A frozen causal LM reading projected image features at its placeholder positions."""

        def __init__(
            self,
            lm: Any,
            image_dim: int,
            *,
            image_tokens: int,
            proj_hidden: int,
            contrastive_dim: int,
            temperature: float,
            placeholder_id: int,
            pad_id: int,
        ) -> None:
            super().__init__()
            self.lm = lm
            for p in self.lm.parameters():
                p.requires_grad_(False)
            self.lm.eval()
            hidden = int(lm.get_input_embeddings().embedding_dim)
            self.hidden = hidden
            self.image_tokens = image_tokens
            self.placeholder_id = placeholder_id
            self.pad_id = pad_id
            self.project = nn.Sequential(
                nn.Linear(image_dim, proj_hidden), nn.GELU(), nn.Linear(proj_hidden, image_tokens * hidden)
            )
            self.image_head = nn.Linear(image_dim, contrastive_dim)
            self.text_head = nn.Linear(hidden, contrastive_dim)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
            with torch.no_grad():  # the size of the LM's own input vectors (scaled embeddings, as the LM sees them)
                sample = torch.arange(min(4096, lm.get_input_embeddings().num_embeddings))
                rms = lm.get_input_embeddings()(sample).float().pow(2).mean().sqrt()
            self.register_buffer("embed_rms", rms.reshape(()))

        def train(self, mode: bool = True):  # the LM stays in eval mode (no dropout in a frozen model)
            super().train(mode)
            self.lm.eval()
            return self

        def trainable(self) -> list:
            return [p for n, p in self.named_parameters() if not n.startswith("lm.")]

        def image_embeds(self, feats):
            """[N, D] features -> [N * image_tokens, hidden] input vectors at the LM's embedding scale."""
            x = self.project(feats).reshape(-1, self.image_tokens, self.hidden)
            x = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * self.embed_rms
            return x.reshape(-1, self.hidden)

        def embed(self, ids, feats):
            mask = ids == self.placeholder_id
            emb = self.lm.get_input_embeddings()(ids.masked_fill(mask, self.pad_id))
            img = self.image_embeds(feats).to(emb.dtype)
            if int(mask.sum()) != img.shape[0]:
                raise ValueError(f"{int(mask.sum())} placeholder positions for {img.shape[0]} image tokens")
            return emb.masked_scatter(mask.unsqueeze(-1), img), mask

        def forward(self, ids, att, lab, feats, post_feats):
            """Sum of caption-token losses, their count, the InfoNCE loss (0 for a batch of one), and the
            [B, contrastive_dim] image and placeholder vectors (L2-normalised)."""
            import torch.nn.functional as F

            emb, mask = self.embed(ids, feats)
            hid = self.lm.base_model(inputs_embeds=emb, attention_mask=att).last_hidden_state
            tgt = lab[:, 1:]
            keep = tgt != -100
            # the output layer only where a caption token is predicted (Gemma 3's 262k-word layer is the costliest)
            logits = self.lm.get_output_embeddings()(hid[:, :-1][keep]).float()
            cap = getattr(self.lm.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            lm_sum = F.cross_entropy(logits, tgt[keep], reduction="sum")
            m = mask.unsqueeze(-1).to(hid.dtype)
            pooled = (hid * m).sum(1) / m.sum(1).clamp(min=1.0)
            t = F.normalize(self.text_head(pooled.float()), dim=-1)
            v = F.normalize(self.image_head(post_feats), dim=-1)
            nce = torch.zeros((), device=hid.device)
            if ids.shape[0] > 1:
                s = self.logit_scale.clamp(max=math.log(100.0)).exp() * v @ t.T
                y = torch.arange(s.shape[0], device=s.device)
                nce = (F.cross_entropy(s, y) + F.cross_entropy(s.T, y)) / 2
            return lm_sum, int(keep.sum()), nce, v, t

        def projector_state(self) -> dict:
            return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("lm.")}

        @torch.inference_mode()
        def generate(
            self,
            ids,
            feats,
            *,
            max_new_tokens: int,
            eos_id: int | None,
            suppress: Sequence[int] = (),
            no_repeat_ngram: int = 0,
        ):
            """Greedy continuation of one prompt (``ids`` [1, T] with placeholders); the new token ids."""
            emb, _ = self.embed(ids, feats)
            att = torch.ones(ids.shape, dtype=torch.long, device=ids.device)
            kw: dict[str, Any] = {}
            if suppress:
                kw["suppress_tokens"] = list(suppress)
            if no_repeat_ngram:  # greedy decoding of a small LM otherwise loops ("The 1990s. The 1990s. ...")
                kw["no_repeat_ngram_size"] = no_repeat_ngram
            out = self.lm.generate(
                inputs_embeds=emb,
                attention_mask=att,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=eos_id,
                pad_token_id=self.pad_id,
                **kw,
            )
            return out[0].tolist()

    return PrefixVLM


def _load_lm(source: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from photopoet.models._lm import dtype_kwarg

    try:
        tok = AutoTokenizer.from_pretrained(source)
        dtype = torch.float32 if device == "cpu" else "auto"
        lm = AutoModelForCausalLM.from_pretrained(source, **dtype_kwarg(dtype))
    except (OSError, ValueError) as e:
        raise StyleTrainError(f"{source}: cannot load the language model: {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token_id is None:
        raise StyleTrainError(f"{source}: the tokenizer has no end-of-text token")
    if PLACEHOLDER not in tok.get_vocab():
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken(PLACEHOLDER, special=True, normalized=False)], special_tokens=True)
    pid = tok.convert_tokens_to_ids(PLACEHOLDER)
    lm.to(device)
    return tok, lm, int(pid)


def _lm_source(cfg: Config, cache_dir: Path) -> tuple[str, str]:
    """(folder or id, name) of the LM: ``train_vlm.lm`` or the run's generator."""
    if cfg.train_vlm.lm:
        return cfg.train_vlm.lm, cfg.train_vlm.lm
    from photopoet.models import create_generator

    gen = create_generator(cfg.models, cache_dir)
    return gen.source, gen.name


@dataclass
class LoadedVLM:
    model: Any
    tok: Any
    meta: dict
    device: str

    def caption(self, feats: np.ndarray, max_new_tokens: int | None = None) -> str:
        """A caption for the photos whose features are the rows of ``feats`` (greedy)."""
        import torch

        from photopoet.models._lm import control_token_ids

        m = self.meta
        ids = prompt_ids(self.tok, m["prompt"], len(feats), m["placeholder_id"], m["image_tokens"])
        t = torch.tensor([ids], device=self.device)
        f = torch.from_numpy(np.asarray(feats, dtype=np.float32)).to(self.device)
        vocab = self.model.lm.get_output_embeddings().weight.shape[0]
        sup = [i for i in control_token_ids(self.tok, {self.tok.eos_token_id}) if i < vocab]
        new = self.model.generate(
            t,
            f,
            max_new_tokens=max_new_tokens or m["eval_max_new_tokens"],
            eos_id=self.tok.eos_token_id,
            suppress=sup,
            no_repeat_ngram=m.get("no_repeat_ngram", 0),
        )
        return _clean(self.tok.decode(new, skip_special_tokens=True))


def _clean(text: str) -> str:
    """The generated caption: its first paragraph, spaces collapsed."""
    return " ".join(text.strip().split("\n\n")[0].split())


def _meta(tc: Any, lm_name: str, lm_source: str, feats: PhotoFeatures, placeholder_id: int, state: dict) -> dict:
    return {
        "kind": "prefix-vlm",
        "lm": lm_name,
        "lm_source": str(lm_source),
        "image_encoder": feats.encoder,
        "image_dim": feats.dim,
        "image_tokens": tc.image_tokens,
        "max_images": tc.max_images,
        "proj_hidden": tc.proj_hidden,
        "contrastive_dim": tc.contrastive_dim,
        "contrastive_weight": tc.contrastive_weight,
        "prompt": tc.prompt,
        "placeholder": PLACEHOLDER,
        "placeholder_id": placeholder_id,
        "eval_max_new_tokens": tc.eval_max_new_tokens,
        "no_repeat_ngram": tc.no_repeat_ngram,
        "step": state.get("step", (state.get("best") or {}).get("step")),
        "best": state.get("best"),
    }


def _save_model(model: Any, d: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    save_file(model.projector_state(), str(d / WEIGHTS_FILE))
    atomic_write_json(d / META_FILE, meta)


def load_prefix_vlm(folder: Path | str, cfg: Config, *, image_encoder: str | None = None) -> LoadedVLM:
    """A trained model from ``OUT/best`` (or ``OUT/last``), on the config's device. The LM is loaded from where
    it was trained from, or from the config's generator when that folder is gone (same name). ``image_encoder``:
    the cache key of the features it will be given; it must be the one it was trained on."""
    from safetensors.torch import load_file

    from photopoet.core.cache import open_cache
    from photopoet.models.base import resolve_device

    d = Path(folder)
    if not (d / META_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
        raise StyleTrainError(f"{d}: not a prefix-VLM folder (no {META_FILE} / {WEIGHTS_FILE}); give OUT/best of a run")
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StyleTrainError(f"{d / META_FILE}: unreadable: {e}") from None
    if image_encoder is not None and image_encoder != meta["image_encoder"]:
        raise StyleTrainError(
            f"{d}: trained on {meta['image_encoder']} image features, but this config gives {image_encoder}; "
            "set models.tier / models.image as in training"
        )
    src = meta["lm_source"]
    if not Path(src).exists() and meta["lm"] != src:  # a cache folder that moved: the config's generator
        _, cache_dir = open_cache(cfg)
        src2, name = _lm_source(cfg, cache_dir)
        if name != meta["lm"]:
            raise StyleTrainError(
                f"{d}: its language model {meta['lm']} ({src}) is not there and the config gives {name}"
            )
        src = src2
    device = resolve_device(cfg.models.device)
    tok, lm, pid = _load_lm(src, device)
    if pid != meta["placeholder_id"]:
        raise StyleTrainError(f"{d}: placeholder token id {pid} differs from training's {meta['placeholder_id']}")
    cls = _torch_module()
    model = cls(
        lm,
        meta["image_dim"],
        image_tokens=meta["image_tokens"],
        proj_hidden=meta["proj_hidden"],
        contrastive_dim=meta["contrastive_dim"],
        temperature=0.07,
        placeholder_id=pid,
        pad_id=tok.pad_token_id,
    )
    state = load_file(str(d / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("lm.")]
    if missing or unexpected:
        raise StyleTrainError(
            f"{d / WEIGHTS_FILE}: does not fit the model (missing {missing}, unexpected {unexpected})"
        )
    model.to(device)
    model.eval()
    return LoadedVLM(model, tok, meta, device)


# -------------------------------------------------------------------------------------------- evaluation


def evaluate(
    model: Any,
    tok: Any,
    examples: Sequence[VLMExample],
    meta: dict,
    device: str,
    batch_size: int,
    *,
    generate: bool = True,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict]]:
    """Scores on ``examples`` (with captions):

    * ``val_loss``: mean caption-token cross-entropy; ``val_nce``: InfoNCE over the whole set at once;
    * ``r_at_1``: share of posts whose own placeholder vector is the nearest of all the set's to their image
      (chance: 1 / n); ``image_gap``: the loss with every post given the next post's photos, minus
      ``val_loss`` (above 0: the model reads the image);
    * with ``generate``: greedy captions' BLEU-1/2/4, ROUGE-L (0-1) and ``distinct`` (share of different
      captions)."""
    import torch
    import torch.nn.functional as F

    was = model.training
    model.eval()
    tot, cnt, tot_wrong, cnt_wrong = 0.0, 0, 0.0, 0
    vs, ts = [], []
    n = len(examples)
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            batch = list(examples[i : i + batch_size])
            s, c, _, v, t = model(*_collate(batch, tok.pad_token_id, device))
            tot, cnt = tot + float(s), cnt + c
            vs.append(v)
            ts.append(t)
            if n > 1:  # the same captions with the next post's photos (placeholder counts follow the photos)
                swapped = []
                for j, e in enumerate(batch):
                    other = examples[(i + j + 1) % n]
                    k = min(len(other.feats), len(e.photos))
                    pi = prompt_ids(tok, meta["prompt"], k, meta["placeholder_id"], meta["image_tokens"])
                    cap = e.input_ids[e.prompt_len :]
                    swapped.append(
                        VLMExample(e.post, other.photos[:k], other.feats[:k], pi + cap, [-100] * len(pi) + cap, len(pi))
                    )
                s2, c2, *_ = model(*_collate(swapped, tok.pad_token_id, device))
                tot_wrong, cnt_wrong = tot_wrong + float(s2), cnt_wrong + c2
        v, t = torch.cat(vs), torch.cat(ts)
        sim = v @ t.T
        r1 = float((sim.argmax(1) == torch.arange(n, device=sim.device)).float().mean()) if n else float("nan")
        y = torch.arange(n, device=sim.device)
        scale = model.logit_scale.clamp(max=math.log(100.0)).exp()
        nce = float((F.cross_entropy(scale * sim, y) + F.cross_entropy(scale * sim.T, y)) / 2) if n > 1 else 0.0
    loss = tot / max(cnt, 1)
    m: dict[str, Any] = {
        "val_loss": loss,
        "val_nce": nce,
        "r_at_1": r1,
        "chance_r_at_1": 1.0 / max(n, 1),
        "image_gap": (tot_wrong / max(cnt_wrong, 1) - loss) if n > 1 else float("nan"),
        "n": n,
    }
    samples: list[dict] = []
    if generate:
        from photopoet.models._lm import control_token_ids

        vocab = model.lm.get_output_embeddings().weight.shape[0]
        sup = [i for i in control_token_ids(tok, {tok.eos_token_id}) if i < vocab]
        gens = []
        for e in tqdm(examples, desc="generating captions", unit="post", disable=not progress, leave=False):
            ids = torch.tensor([e.input_ids[: e.prompt_len]], device=device)
            f = torch.from_numpy(e.feats.astype(np.float32)).to(device)
            new = model.generate(
                ids,
                f,
                max_new_tokens=meta["eval_max_new_tokens"],
                eos_id=tok.eos_token_id,
                suppress=sup,
                no_repeat_ngram=meta.get("no_repeat_ngram", 0),
            )
            gens.append(_clean(tok.decode(new, skip_special_tokens=True)))
        m |= caption_scores(gens, [e.post.reference for e in examples])
        m["distinct"] = len(set(gens)) / max(len(gens), 1)
        samples = [
            {"post_id": e.post.post_id, "photos": list(e.photos), "generated": g, "reference": e.post.reference}
            for e, g in zip(examples, gens, strict=True)
        ]
    if was:
        model.train()
    return m, samples


# --------------------------------------------------------------------------------------------- training


@dataclass
class VLMTrainResult:
    out: Path
    step: int
    total_steps: int
    epoch: float
    history: list[dict]
    best: dict | None
    stopped_early: bool
    resumed_from: int
    report: CleaningReport
    split: dict[str, int]
    trainable: int


def _fingerprint(tc: Any, lm_name: str, encoder: str, train: Sequence[VLMExample], val: Sequence[VLMExample]) -> dict:
    settings = tc.model_dump(mode="json")
    for k in (
        "epochs",
        "max_steps",
        "patience",
        "min_delta",
        "save_steps",
        "metric",
        "eval_max_new_tokens",
        "no_repeat_ngram",
        "generate_every_eval",
    ):
        settings.pop(k)  # changing these continues the same run
    h = hashlib.sha256()
    for e in [*train, *val]:
        h.update(json.dumps([e.post.post_id, e.input_ids, list(e.photos)]).encode())
        h.update(np.ascontiguousarray(e.feats).tobytes())
    return {"settings": settings, "lm": lm_name, "image_encoder": encoder, "data": h.hexdigest(), "n_train": len(train)}


def prepare(
    data: Path, images: Path, cfg: Config, *, features: PhotoFeatures | None, progress: bool, echo: Callable
) -> tuple[dict[str, list[PostRecord]], CleaningReport, PhotoFeatures]:
    """Posts (cleaned, split by post) and the photos' frozen features."""
    if not images.is_dir():
        raise StyleTrainError(f"{images}: no such images folder")
    from photopoet.errors import DataFileError

    try:
        posts, report = load_posts(data, cfg.caption.max_chars, min_chars=cfg.caption.min_chars)
    except DataFileError as e:
        raise StyleTrainError(str(e)) from None
    for s in report.skipped:
        echo(f"skipped {s}")
    if not posts:
        raise StyleTrainError(f"{data}: no usable post (each line needs post_id, caption and images)")
    parts = split_posts(posts, cfg.train_vlm.val_fraction, cfg.train_vlm.seed)
    if features is None:
        features = photo_features(images, cfg, progress=progress)
    if not features.vectors:
        raise StyleTrainError(f"{images}: no readable photo")
    return parts, report, features


def train_prefix_vlm(
    data: Path | str,
    images: Path | str,
    out: Path | str,
    cfg: Config,
    *,
    progress: bool = True,
    features: PhotoFeatures | None = None,
    echo: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> VLMTrainResult:
    """Train the projection and heads; see the module docstring. Writes ``OUT/best``, ``OUT/last``,
    ``OUT/initial`` (the untrained projection, a baseline for ``eval prefix-vlm``), ``OUT/split.json``,
    ``OUT/cleaning.json``, ``OUT/history.jsonl`` and ``OUT/samples/step-N.jsonl``.

    ``features`` defaults to the run's image features of ``images`` (tests pass their own). ``stop_after``
    ends the call after that many steps of it, as a kill would (tests)."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from photopoet.core.cache import open_cache
    from photopoet.models.base import resolve_device

    tc = cfg.train_vlm
    data, images, out = Path(data), Path(images), Path(out)
    parts, report, features = prepare(data, images, cfg, features=features, progress=progress, echo=echo)
    if not parts["train"] or not parts["val"]:
        raise StyleTrainError(
            f"{data}: {sum(map(len, parts.values()))} usable posts give {len(parts['train'])} to train on and "
            f"{len(parts['val'])} to validate on; at least one of each is needed"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "cleaning.json", report.to_json())
    atomic_write_json(out / "split.json", {k: [r.post_id for r in v] for k, v in parts.items()})
    echo(
        f"split by post: {len(parts['train'])} train, {len(parts['val'])} validation, "
        f"{len(parts['test'])} test (never used here)"
    )

    _, cache_dir = open_cache(cfg)
    lm_source, lm_name = _lm_source(cfg, cache_dir)
    device = resolve_device(cfg.models.device)
    tok, lm, pid = _load_lm(lm_source, device)
    train_ex = build_examples(parts["train"], features, tok, pid, tc, echo=echo)
    val_ex = build_examples(parts["val"], features, tok, pid, tc, echo=echo)
    if not train_ex or not val_ex:
        raise StyleTrainError(f"{images}: the photos of the training or validation posts are missing")
    fp = _fingerprint(tc, lm_name, features.encoder, train_ex, val_ex)

    last, best_dir = out / "last", out / "best"
    recover(last)
    recover(best_dir)
    state: dict[str, Any] = {}
    if (last / STATE_FILE).is_file():
        state = json.loads((last / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("fingerprint") != fp:
            what = [k for k in fp if fp[k] != state.get("fingerprint", {}).get(k)]
            raise StyleTrainError(
                f"{out}: holds a run with other {', '.join(what) or 'settings'} than this one; to continue it, give "
                "the same data and settings, or choose a new --out"
            )

    steps_per_epoch = math.ceil(len(train_ex) / tc.batch_size)
    sched_steps = tc.epochs * steps_per_epoch
    total_steps = min(sched_steps, tc.max_steps) if tc.max_steps else sched_steps

    torch.manual_seed(tc.seed)
    model = _torch_module()(
        lm,
        features.dim,
        image_tokens=tc.image_tokens,
        proj_hidden=tc.proj_hidden,
        contrastive_dim=tc.contrastive_dim,
        temperature=tc.temperature,
        placeholder_id=pid,
        pad_id=tok.pad_token_id,
    ).to(device)
    params = model.trainable()
    opt = torch.optim.AdamW(params, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, int(tc.warmup_ratio * sched_steps), max(sched_steps, 1))
    step = int(state.get("step", 0))
    history: list[dict] = list(state.get("history", []))
    best: dict | None = state.get("best")
    bad_epochs = int(state.get("bad_epochs", 0))
    stopped = bool(state.get("stopped_early", False))
    if state:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(last / WEIGHTS_FILE)), strict=False)
        opt.load_state_dict(torch.load(last / "optimizer.pt", map_location=device, weights_only=True))
        sched.load_state_dict(torch.load(last / "scheduler.pt", weights_only=True))
        set_rng_state(torch.load(last / "rng.pt", weights_only=False))
        echo(f"resuming {out} at step {step} of {total_steps}")
    resumed_from = step
    n_trainable = sum(p.numel() for p in params)
    echo(
        f"prefix VLM: {features.encoder} features ({features.dim}-d) -> {tc.image_tokens} tokens x "
        f"{model.hidden}-d into {lm_name} (frozen); {n_trainable:,} trainable weights; "
        f"InfoNCE weight {tc.contrastive_weight:g}"
    )

    def meta(st: dict) -> dict:
        return _meta(tc, lm_name, lm_source, features, pid, st)

    def save_last() -> None:
        st = {
            "step": step,
            "epoch": step / steps_per_epoch,
            "total_steps": total_steps,
            "history": history,
            "best": best,
            "bad_epochs": bad_epochs,
            "stopped_early": stopped,
            "fingerprint": fp,
        }

        def write(d: Path) -> None:
            _save_model(model, d, meta(st))
            torch.save(opt.state_dict(), d / "optimizer.pt")
            torch.save(sched.state_dict(), d / "scheduler.pt")
            torch.save(rng_state(), d / "rng.pt")
            atomic_write_json(d / STATE_FILE, st)

        swap_in(last, write)

    def run_eval(epoch: float) -> bool:
        nonlocal best, bad_epochs
        gen = tc.metric in ("rougeL", "bleu1", "bleu4") or tc.generate_every_eval
        with torch.random.fork_rng(devices=[]):
            m, samples = evaluate(model, tok, val_ex, meta({}), device, tc.batch_size, generate=gen, progress=progress)
        row = {"step": step, "epoch": round(epoch, 3), **{k: round_metric(v) for k, v in m.items()}}
        history.append(row)
        if samples:
            atomic_write_text(
                out / "samples" / f"step-{step:06d}.jsonl",
                "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples),
            )
        atomic_write_text(out / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        line = (
            f"epoch {epoch:.2f} step {step}: val_loss {m['val_loss']:.4f}  InfoNCE {m['val_nce']:.4f}  "
            f"R@1 {m['r_at_1']:.3f} (chance {m['chance_r_at_1']:.3f})  image gap {m['image_gap']:+.4f}"
        )
        if gen:
            line += f"  BLEU-1 {m['bleu1']:.4f}  BLEU-4 {m['bleu4']:.4f}  ROUGE-L {m['rougeL']:.4f}"
            line += f"  distinct {m['distinct']:.2f}"
        echo(line)
        val = m[tc.metric]
        better = best is None or (
            not math.isnan(val)
            and (
                val < best["value"] - tc.min_delta
                if tc.metric in LOWER_IS_BETTER
                else val > best["value"] + tc.min_delta
            )
        )
        if better:
            best = {
                "step": step,
                "epoch": round(epoch, 3),
                "metric": tc.metric,
                "value": round_metric(val),
                "scores": row,
            }
            bad_epochs = 0
            st = {"step": step, "best": best}
            swap_in(best_dir, lambda d: _save_model(model, d, meta(st)))
            echo(f"  new best {tc.metric} {val:.4f}: {best_dir}")
            return False
        bad_epochs += 1
        echo(f"  no better {tc.metric} than {best['value']:.4f} (step {best['step']}) for {bad_epochs} epoch(s)")
        return bad_epochs >= tc.patience

    def result() -> VLMTrainResult:
        return VLMTrainResult(
            out,
            step,
            total_steps,
            step / steps_per_epoch,
            history,
            best,
            stopped,
            resumed_from,
            report,
            {k: len(v) for k, v in parts.items()},
            n_trainable,
        )

    if stopped or step >= total_steps:
        why = "stopped early" if stopped else f"reached step {step} of {total_steps}"
        echo(f"{out}: this run has already {why}; nothing to do (raise --epochs or --max-steps to go on)")
        return result()
    if step == 0 and not history:  # the untrained projection is the first score to beat, and kept as a baseline
        swap_in(out / "initial", lambda d: _save_model(model, d, meta({"step": 0})))
        run_eval(0.0)
    model.train()
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not progress)
    done_here = 0
    avg = None
    interrupt = StopOnSigint()
    try:
        while step < total_steps and not stopped:
            epoch = step // steps_per_epoch
            order = list(range(len(train_ex)))
            random.Random(tc.seed * 100003 + epoch).shuffle(order)
            k = step - epoch * steps_per_epoch
            batch = [train_ex[i] for i in order[k * tc.batch_size : (k + 1) * tc.batch_size]]
            s, c, nce, _, _ = model(*_collate(batch, tok.pad_token_id, device))
            lm_loss = s / max(c, 1)
            loss = lm_loss + tc.contrastive_weight * nce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            done_here += 1
            cur = (lm_loss.item(), nce.item())
            avg = cur if avg is None else (0.9 * avg[0] + 0.1 * cur[0], 0.9 * avg[1] + 0.1 * cur[1])
            bar.update(1)
            bar.set_postfix(lm=f"{avg[0]:.3f}", nce=f"{avg[1]:.3f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            end_of_epoch = step % steps_per_epoch == 0
            if end_of_epoch or step == total_steps:
                stopped = run_eval(step / steps_per_epoch)
                save_last()
            elif step % tc.save_steps == 0:
                save_last()
            asked = interrupt.requested or (stop_after is not None and done_here >= stop_after)
            if asked and step < total_steps:
                if not (end_of_epoch or step % tc.save_steps == 0):
                    save_last()
                bar.close()
                raise KeyboardInterrupt(f"stopped after step {step}; last/ saved")
    finally:
        interrupt.restore()
    bar.close()
    if stopped:
        echo(f"early stopping: {tc.metric} did not improve for {tc.patience} epoch(s); best at step {best['step']}")
    echo(f"best model: {best_dir}  (captions: photopoet eval prefix-vlm --model {best_dir} ...)")
    return result()


def evaluate_posts(
    model_dir: Path | str,
    data: Path | str,
    images: Path | str,
    cfg: Config,
    *,
    split: str = "test",
    features: PhotoFeatures | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> tuple[dict[str, Any], list[dict]]:
    """Scores and generated captions of a trained model on one split of a posts file (``test``: the fixed
    held-out quarter, ``val``, ``train`` or ``all``)."""
    if split not in ("test", "val", "train", "all"):
        raise StyleTrainError(f"split must be test, val, train or all, got {split!r}")
    data, images = Path(data), Path(images)
    parts, _, features = prepare(data, images, cfg, features=features, progress=progress, echo=echo)
    vlm = load_prefix_vlm(model_dir, cfg, image_encoder=features.encoder)
    posts = [p for ps in parts.values() for p in ps] if split == "all" else parts[split]
    if not posts:
        raise StyleTrainError(f"{data}: no post in the {split} split")
    ex = build_examples(posts, features, vlm.tok, vlm.meta["placeholder_id"], _tc_from_meta(vlm.meta, cfg), echo=echo)
    if not ex:
        raise StyleTrainError(f"{images}: none of the {split} posts' photos is there")
    return evaluate(vlm.model, vlm.tok, ex, vlm.meta, vlm.device, cfg.train_vlm.batch_size, progress=progress)


def _tc_from_meta(meta: dict, cfg: Config) -> Any:
    """The training settings that shape examples, as the model was trained (the rest from the config)."""
    keys = ("prompt", "image_tokens", "max_images")
    return cfg.train_vlm.model_copy(update={k: meta[k] for k in keys})
