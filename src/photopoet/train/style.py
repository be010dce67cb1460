"""`photopoet train style`: LoRA (``peft``) on the caption generator, from a club's past posts.

Each training example is the prompt the product builds at run time (:func:`caption_prompt`: event, labels and
the photos' visual concepts, with ``train_style.prompt_examples`` style examples, none by default) followed by
the club's cleaned caption and the end-of-text token; the loss covers the caption tokens only.

The labels in those prompts are the data file's own (``train_style.labels: data``, the default) or the ones
`photopoet run` gives the post's photos (``run``: zero-shot labels from ``understand.labels``, kept when they are
the best label of half the post's photos). A club's own labels are often hashtag words ("spitivalley") that a
run never writes, so ``run`` matches training to use; measured on the club's test posts with run-time labels,
the adapter trained on the club's labels still scored as well or better (docs/benchmarks.md, "Caption style
fine-tuning").

Why no style examples in training prompts by default: the adapter is meant to carry the club's style in its
weights, so the few-shot examples are no longer needed; prompts without them are about four times shorter
(faster steps on a CPU), and the model does not learn to lean on an example it could copy (the README notes that
Gemma 270M copies shown examples verbatim). A caption writer given an adapter uses the number of examples it
was trained with (``photopoet_adapter.json``), so run-time prompts match training prompts.

Every epoch (and at a stop by ``max_steps``) the validation posts are scored: loss on their captions, and
captions generated for them greedily, cleaned as the product cleans them, against the club's captions:
BLEU-1/2/4 and ROUGE-L (0-1) and the image-text agreement (cosine, -1..1; the offline tier's ConSE agreement
sits in a compressed 0.80-0.90 band on the club's photos, so differences of 0.005 matter). Early stopping
follows ``train_style.metric``. ``OUT/best/`` holds the adapter of the best epoch, ``OUT/last/`` the latest one
with the optimizer, scheduler, RNG states and step: running the same command again continues from there.
Folders are written to a temporary sibling and renamed into place, so a killed run leaves the previous ones.

The loop is written out (not ``transformers.Trainer``) because each evaluation generates captions and scores
them with the product's cleaning and agreement, and because best/ and last/ are swapped in atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from photopoet.config import Config, TrainStyleConfig
from photopoet.core.adapters import ADAPTER_META
from photopoet.core.files import atomic_write_json, atomic_write_text
from photopoet.errors import StyleTrainError
from photopoet.stages.write.caption import CaptionInput, agreement, caption_prompt
from photopoet.stages.write.clean import clean_caption
from photopoet.stages.write.style import StyleBank, StyleExample, topic_text
from photopoet.train.loop import STATE_FILE, StopOnSigint, recover, rng_state, round_metric, set_rng_state, swap_in
from photopoet.train.style_data import CleaningReport, PostRecord, load_posts, split_posts

logger = logging.getLogger(__name__)

LOWER_IS_BETTER = {"val_loss"}
EVAL_GENERATE_BATCH = 16


@dataclass(frozen=True)
class PostFeatures:
    """What the prompt and the agreement score need from a post's photos."""

    concepts: tuple[str, ...] = ()
    vector: np.ndarray | None = None  # the photos in the text space, L2-normalised
    n_photos: int = 0
    labels: tuple[str, ...] = ()  # the labels `photopoet run` gives these photos (the config's label list)


@dataclass
class Example:
    post: PostRecord
    prompt: str
    item: CaptionInput
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


@dataclass
class TrainResult:
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


# ------------------------------------------------------------------------------------------------ features


def post_features(
    posts: Sequence[PostRecord], images_dir: Path, cfg: Config, *, progress: bool = True
) -> tuple[dict[str, PostFeatures], list[str]]:
    """Concepts, text-space vector and run-time labels of each post's photos (the run's models, cache and label
    list), and problems (images the folder lacks). Posts with none of their images found get empty features."""
    from photopoet.pipeline import understand_folder
    from photopoet.stages.write.template import post_labels
    from photopoet.stages.write.texts import mean_vector, post_concepts

    _, und = understand_folder(images_dir, cfg, progress=progress)
    idx = {Path(u.photo.path).name: i for i, u in enumerate(und.photos)}
    feats: dict[str, PostFeatures] = {}
    problems: list[str] = []
    for r in posts:
        members = [idx[x] for x in r.images if x in idx]
        missing = [x for x in r.images if x not in idx]
        if missing:
            problems.append(f"post {r.post_id}: {len(missing)} of {len(r.images)} images not found in {images_dir}")
        feats[r.post_id] = PostFeatures(
            concepts=tuple(post_concepts([list(und.photos[i].concepts) for i in members])),
            vector=mean_vector([und.text_vectors[i] for i in members]) if members else None,
            n_photos=len(members),
            labels=tuple(post_labels([und.photos[i] for i in members])),
        )
    return feats, problems


# ------------------------------------------------------------------------------------------------ examples


def caption_input(post: PostRecord, feats: PostFeatures, labels: str = "data") -> CaptionInput:
    """The caption input `photopoet run` would build for a past post. ``labels``: "run" takes the labels the run
    gives its photos (``feats.labels``), "data" the first three of the data file's own labels."""
    if labels not in ("run", "data"):
        raise ValueError(f"labels must be 'run' or 'data', not {labels!r}")
    return CaptionInput(
        id=post.post_id,
        event=post.event,
        labels=tuple(feats.labels) if labels == "run" else tuple(post.labels[:3]),
        concepts=feats.concepts,
        n_photos=max(feats.n_photos, 1),
        image_vector=feats.vector,
    )


def build_examples(
    posts: Sequence[PostRecord],
    feats: dict[str, PostFeatures],
    tok: Any,
    max_length: int,
    *,
    n_examples: int = 0,
    bank: StyleBank | None = None,
    labels: str = "data",
) -> list[Example]:
    """Prompt + caption token ids, labels -100 on the prompt (and padding) so the loss is on the caption.
    ``labels``: where the prompt's labels come from (see :func:`caption_input`)."""
    out = []
    eos = tok.eos_token_id
    for p in posts:
        item = caption_input(p, feats.get(p.post_id, PostFeatures()), labels)
        shown: list[StyleExample] = []
        if n_examples and bank is not None:
            near = bank.nearest(topic_text(item.event, item.labels, item.concepts), n_examples + 1)
            shown = [e for e in near if e.caption != p.caption][:n_examples]
        prompt = caption_prompt(item, shown)
        pi = tok(prompt, add_special_tokens=True)["input_ids"]
        ti = tok(" " + p.caption, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        room = max_length - len(ti)
        if room < 8:  # cut the caption first, keeping the end token
            ti = ti[: max(max_length - len(pi) - 1, 1)] + ([eos] if eos is not None else [])
        if len(pi) + len(ti) > max_length:
            pi = pi[-(max_length - len(ti)) :]  # a very long prompt keeps its end (the topic line)
        out.append(Example(p, prompt, item, pi + ti, [-100] * len(pi) + ti))
    return out


def _collate(batch: Sequence[Example], pad_id: int):
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
    return ids, att, lab


def _batch_loss(model, ids, att, lab):
    """Sum of token losses over caption tokens and their count (so a mean over a set is exact).

    The output layer runs only where a caption token is predicted: Gemma 3's vocabulary has 262k entries, so
    its output layer (168M weights) costs more than the rest of the model, and prompts are most of each row."""
    import torch
    import torch.nn.functional as F

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = lm.get_decoder()(input_ids=ids, attention_mask=att).last_hidden_state[:, :-1]
    tgt = lab[:, 1:]
    keep = tgt != -100
    logits = lm.get_output_embeddings()(hidden[keep]).float()
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    loss = F.cross_entropy(logits, tgt[keep], reduction="sum")
    return loss, int(keep.sum())


# -------------------------------------------------------------------------------------------- evaluation


def generate_captions(model, tok, prompts: Sequence[str], max_new_tokens: int, batch_size: int, device: str):
    """Greedy continuations, left-padded batches; the model's adapter as it is."""
    import torch

    old = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = tok(list(prompts[i : i + batch_size]), return_tensors="pt", padding=True).to(device)
            with torch.inference_mode():
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tok.padding_side = old
    return out


def evaluate(
    model,
    tok,
    examples: Sequence[Example],
    cfg: Config,
    text_encoder,
    device: str,
    *,
    progress: bool = False,
) -> tuple[dict[str, float], list[dict]]:
    """Validation loss, generated captions' BLEU-1/2/4, ROUGE-L (0-1) and mean image-text agreement (cosine)."""
    import torch

    tc, cc = cfg.train_style, cfg.caption
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    bs = tc.batch_size
    with torch.inference_mode():
        for i in range(0, len(examples), bs):
            ids, att, lab = _collate(examples[i : i + bs], tok.pad_token_id)
            s, n = _batch_loss(model, ids.to(device), att.to(device), lab.to(device))
            total, count = total + float(s), count + n
    raw: list[str] = []
    gb = max(bs, EVAL_GENERATE_BATCH)  # generation is cheaper per caption in wider batches
    for i in tqdm(
        range(0, len(examples), gb), desc="validation captions", unit="batch", disable=not progress, leave=False
    ):
        raw += generate_captions(
            model, tok, [e.prompt for e in examples[i : i + gb]], tc.eval_max_new_tokens, gb, device
        )
    gens = [clean_caption(r, max_chars=cc.max_chars, min_chars=cc.min_chars) for r in raw]
    scores = caption_scores(gens, [e.post.reference for e in examples])
    agree = []
    samples = []
    for e, g, r in zip(examples, gens, raw, strict=True):
        a = agreement(text_encoder, e.item.image_vector, [g])[0] if g and text_encoder is not None else None
        if a is not None:
            agree.append(a)
        samples.append(
            {
                "post_id": e.post.post_id,
                "topic": topic_text(e.item.event, e.item.labels, e.item.concepts),
                "generated": g,
                "raw": r,
                "reference": e.post.reference,
                "agreement": a,
            }
        )
    if was_training:
        model.train()
    metrics = {
        "val_loss": total / max(count, 1),
        **scores,
        "agreement": float(np.mean(agree)) if agree else float("nan"),
        "empty": sum(1 for g in gens if not g),
    }
    return metrics, samples


def caption_scores(preds: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """BLEU-1/2/4 and ROUGE-L (0-1) from :mod:`photopoet.metrics.text` (pycocoevalcap's definitions). Tokens:
    pycocoevalcap's PTB tokenizer where Java and its jar are there, else lower-cased runs of letters and digits
    (punctuation dropped, as the PTB route drops it); ``tokenizer`` in the result says which."""
    from photopoet.metrics import text as tm

    try:
        if shutil.which("java") is None or tm.find_ptb_jar() is None:
            raise tm.TokenizerError("no Java or no PTB jar")
        toks = tm.ptb_tokenize(list(preds) + list(refs))
        name = "ptb"
    except tm.TokenizerError:
        toks = [re.findall(r"\w+", t.lower()) for t in [*preds, *refs]]
        name = "words"
    n = len(preds)
    m = tm.text_metrics(toks[:n], [[r] for r in toks[n:]])
    return {k: float(m[k]) for k in ("bleu1", "bleu2", "bleu4", "rougeL")} | {"tokenizer": name}


# ------------------------------------------------------------------------------------------ saving, state


def _fingerprint(cfg: Config, generator_name: str, train: Sequence[Example], val: Sequence[Example]) -> dict:
    tc = cfg.train_style.model_dump(mode="json")
    for k in ("epochs", "max_steps", "patience", "save_steps", "metric", "eval_max_new_tokens"):
        tc.pop(k)  # changing these continues the same run
    data = hashlib.sha256()
    for e in [*train, *val]:
        data.update(json.dumps([e.post.post_id, e.input_ids, e.labels]).encode())
    return {"settings": tc, "generator": generator_name, "data": data.hexdigest(), "n_train": len(train)}


# --------------------------------------------------------------------------------------------- training


def train_style(
    data: Path | str,
    images: Path | str,
    out: Path | str,
    cfg: Config,
    *,
    progress: bool = True,
    generator_source: str | None = None,
    generator_name: str | None = None,
    text_encoder: Any = None,
    features: dict[str, PostFeatures] | None = None,
    echo: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a LoRA adapter for the caption style; see the module docstring. ``OUT/best``, ``OUT/last``,
    ``OUT/cleaning.json``, ``OUT/split.json``, ``OUT/history.jsonl`` and ``OUT/samples/epoch-N.jsonl`` are written.

    ``generator_source`` / ``text_encoder`` / ``features`` default to the config's models (tests pass small
    ones). ``stop_after`` ends the process after that many steps of this call, as a kill would (tests)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    from photopoet.core.cache import open_cache
    from photopoet.models import create_generator, create_text_encoder
    from photopoet.models._lm import dtype_kwarg
    from photopoet.models.base import resolve_device

    tc = cfg.train_style
    data, images, out = Path(data), Path(images), Path(out)
    if not images.is_dir():
        raise StyleTrainError(f"{images}: no such images folder")
    out.mkdir(parents=True, exist_ok=True)
    _, cache_dir = open_cache(cfg)

    # --- data: clean, report, split
    posts, report = load_posts(data, cfg.caption.max_chars, min_chars=cfg.caption.min_chars)
    for s in report.skipped:
        echo(f"skipped {s}")
    if not posts:
        raise StyleTrainError(f"{data}: no usable post (each line needs post_id, caption and images)")
    parts = split_posts(posts, tc.val_fraction, tc.seed)
    if not parts["train"] or not parts["val"]:
        raise StyleTrainError(
            f"{data}: {len(posts)} usable posts give {len(parts['train'])} to train on and {len(parts['val'])} to "
            "validate on; at least one of each is needed"
        )
    atomic_write_json(out / "cleaning.json", report.to_json())
    echo(report.to_text())
    split = {k: [r.post_id for r in v] for k, v in parts.items()}
    atomic_write_json(out / "split.json", split)
    echo(
        f"split by post: {len(parts['train'])} train, {len(parts['val'])} validation, "
        f"{len(parts['test'])} test (never used here)"
    )

    if features is None:
        features, problems = post_features(parts["train"] + parts["val"], images, cfg, progress=progress)
        for p in problems:
            echo(f"warning: {p}")
    if text_encoder is None:
        text_encoder = create_text_encoder(cfg.models, cache_dir)

    # --- model
    if generator_source is None:
        gen = create_generator(cfg.models, cache_dir)
        generator_source, generator_name = gen.source, gen.name
    generator_name = generator_name or str(generator_source)
    device = resolve_device(cfg.models.device)
    tok = AutoTokenizer.from_pretrained(generator_source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token_id is None:
        raise StyleTrainError(f"{generator_source}: the tokenizer has no end-of-text token")
    bank = None
    if tc.prompt_examples:
        bank = StyleBank([StyleExample(r.caption, r.event, r.labels) for r in parts["train"]], text_encoder)
    kw = {"n_examples": tc.prompt_examples, "bank": bank, "labels": tc.labels}
    train_ex = build_examples(parts["train"], features, tok, tc.max_length, **kw)
    val_ex = build_examples(parts["val"], features, tok, tc.max_length, **kw)
    fp = _fingerprint(cfg, generator_name, train_ex, val_ex)

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
                f"the same data and settings, or choose a new --out"
            )

    steps_per_epoch = math.ceil(len(train_ex) / tc.batch_size)
    total_steps = tc.epochs * steps_per_epoch
    if tc.max_steps:
        total_steps = min(total_steps, tc.max_steps)
    # the rate schedule spans all epochs: --max-steps only says where to stop, so a run stopped at step k and
    # continued to step n follows the same schedule as one run to n (raising --epochs stretches what is left)
    sched_steps = tc.epochs * steps_per_epoch

    dtype = torch.float32 if device == "cpu" else "auto"
    base = AutoModelForCausalLM.from_pretrained(generator_source, **dtype_kwarg(dtype))
    torch.manual_seed(tc.seed)
    if state:
        model = PeftModel.from_pretrained(base, str(last), is_trainable=True)
    else:
        lcfg = LoraConfig(
            r=tc.lora_r,
            lora_alpha=tc.lora_alpha,
            lora_dropout=tc.lora_dropout,
            target_modules=tc.target_modules[0] if tc.target_modules == ["all-linear"] else tc.target_modules,
            task_type="CAUSAL_LM",
        )
        try:
            model = get_peft_model(base, lcfg)
        except ValueError as e:
            raise StyleTrainError(f"train_style.target_modules {tc.target_modules}: {e}") from None
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(tc.warmup_ratio * sched_steps), max(sched_steps, 1))
    step = int(state.get("step", 0))
    history: list[dict] = list(state.get("history", []))
    best: dict | None = state.get("best")
    bad_epochs = int(state.get("bad_epochs", 0))
    stopped = bool(state.get("stopped_early", False))
    if state:
        opt.load_state_dict(torch.load(last / "optimizer.pt", map_location=device, weights_only=True))
        sched.load_state_dict(torch.load(last / "scheduler.pt", weights_only=True))
        set_rng_state(torch.load(last / "rng.pt", weights_only=False))
        echo(f"resuming {out} at step {step} of {total_steps}")
    resumed_from = step
    n_trainable = sum(p.numel() for p in params)
    echo(f"LoRA r={tc.lora_r} alpha={tc.lora_alpha:g} on {tc.target_modules}: {n_trainable:,} trainable weights")

    def save_last() -> None:
        st = {
            "step": step,
            "epoch": step / steps_per_epoch,
            "total_steps": total_steps,
            "schedule_steps": sched_steps,
            "history": history,
            "best": best,
            "bad_epochs": bad_epochs,
            "stopped_early": stopped,
            "fingerprint": fp,
        }

        def write(d: Path) -> None:
            _save_adapter(model, d, generator_name, tc, st)
            torch.save(opt.state_dict(), d / "optimizer.pt")
            torch.save(sched.state_dict(), d / "scheduler.pt")
            torch.save(rng_state(), d / "rng.pt")
            atomic_write_json(d / STATE_FILE, st)

        swap_in(last, write)

    def run_eval(epoch: float) -> bool:
        """Score the validation posts, record, keep best/; True when early stopping says stop."""
        nonlocal best, bad_epochs
        with torch.random.fork_rng(devices=[]):
            m, samples = evaluate(model, tok, val_ex, cfg, text_encoder, device, progress=progress)
        row = {"step": step, "epoch": round(epoch, 3), **{k: round_metric(v) for k, v in m.items()}}
        history.append(row)
        atomic_write_text(
            out / "samples" / f"step-{step:06d}.jsonl",
            "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples),
        )
        atomic_write_text(out / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        echo(
            f"epoch {epoch:.2f} step {step}: val_loss {m['val_loss']:.4f}  BLEU-1 {m['bleu1']:.4f}  "
            f"BLEU-2 {m['bleu2']:.4f}  BLEU-4 {m['bleu4']:.4f}  ROUGE-L {m['rougeL']:.4f}  "
            f"agreement {m['agreement']:.4f} (cosine)  empty {m['empty']}/{len(val_ex)}"
        )
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
            st = {"best": best, "history": history, "fingerprint": fp}
            swap_in(best_dir, lambda d: _save_adapter(model, d, generator_name, tc, st))
            echo(f"  new best {tc.metric} {val:.4f}: {best_dir}")
            return False
        bad_epochs += 1
        echo(f"  no better {tc.metric} than {best['value']:.4f} (step {best['step']}) for {bad_epochs} epoch(s)")
        return bad_epochs >= tc.patience

    def result(resumed_from: int) -> TrainResult:
        split = {k: len(v) for k, v in parts.items()}
        return TrainResult(
            out, step, total_steps, step / steps_per_epoch, history, best, stopped, resumed_from, report, split
        )

    if stopped or step >= total_steps:
        why = "stopped early" if stopped else f"reached step {step} of {total_steps}"
        echo(f"{out}: this run has already {why}; nothing to do (raise --epochs or --max-steps to go on)")
        return result(resumed_from=step)

    if step == 0 and not history:  # the untrained adapter is the first score to beat
        run_eval(0.0)
    model.train()
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not progress)
    done_here = 0
    loss_avg = None
    interrupt = StopOnSigint()
    try:
        while step < total_steps and not stopped:
            epoch = step // steps_per_epoch
            order = list(range(len(train_ex)))
            random.Random(tc.seed * 100003 + epoch).shuffle(order)
            k = step - epoch * steps_per_epoch
            batch = [train_ex[i] for i in order[k * tc.batch_size : (k + 1) * tc.batch_size]]
            ids, att, lab = _collate(batch, tok.pad_token_id)
            s, n = _batch_loss(model, ids.to(device), att.to(device), lab.to(device))
            loss = s / max(n, 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            done_here += 1
            loss_avg = float(loss) if loss_avg is None else 0.9 * loss_avg + 0.1 * float(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_avg:.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            end_of_epoch = step % steps_per_epoch == 0
            if end_of_epoch or step == total_steps:
                stopped = run_eval(step / steps_per_epoch)
                save_last()
            elif step % tc.save_steps == 0:
                save_last()
            asked = interrupt.requested or (stop_after is not None and done_here >= stop_after)
            if asked and step < total_steps:  # Ctrl-C ends the step it is in, saves last/, then stops
                if not (end_of_epoch or step % tc.save_steps == 0):
                    save_last()
                bar.close()
                raise KeyboardInterrupt(f"stopped after step {step}; last/ saved")
    finally:
        interrupt.restore()
    bar.close()
    if stopped:
        echo(f"early stopping: {tc.metric} did not improve for {tc.patience} epoch(s); best at step {best['step']}")
    if best and best.get("step") == 0 and step > 0:
        echo(
            f"warning: no epoch scored a better {tc.metric} on the {len(val_ex)} validation posts than the untrained "
            "adapter, so best/ writes as the base model does; last/ holds the trained one. With few validation "
            "posts generated-caption scores are noisy: --metric val_loss follows the loss on the club's captions"
        )
    echo(f"best adapter: {best_dir}  (use: photopoet caption ... --adapter {best_dir})")
    return result(resumed_from)


def _save_adapter(model, d: Path, generator_name: str, tc: TrainStyleConfig, state: dict) -> None:
    model.save_pretrained(str(d))
    meta = {
        "kind": "caption-style-lora",
        "generator": generator_name,
        "prompt_examples": tc.prompt_examples,
        "labels": tc.labels,
        "step": state.get("step", state.get("best", {}).get("step")),
        "best": state.get("best"),
    }
    atomic_write_json(d / ADAPTER_META, meta)
