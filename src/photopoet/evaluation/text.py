"""Captions against references from two JSON-lines files, for ``photopoet eval text``.

Predictions: one ``{"id": ..., "text": "..."}`` a line. References: one ``{"id": ..., "refs": ["...", ...]}`` a
line (``"text": "..."`` is taken as a single reference; several lines with one id add up). Ids are compared as
strings (``1`` and ``"1"`` are the same item). A line that cannot be used is reported as ``file:line: reason``
and skipped; so is a second prediction for an id. Items with a prediction but no reference, or the reverse,
are listed and left out of the scores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photopoet.errors import TextEvalError
from photopoet.evaluation.base import EvalResult


@dataclass
class Loaded:
    items: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TextEvalError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TextEvalError(f"{path}: a folder, not a JSON-lines file") from None
    except UnicodeDecodeError as e:
        raise TextEvalError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TextEvalError(f"{path}: cannot read: {e.strerror or e}") from None


def _object(path: Path, n: int, line: str) -> tuple[str | None, dict | None, str | None]:
    try:
        obj = json.loads(line)
    except ValueError as e:
        return None, None, f"{path}:{n}: not JSON ({e.msg})"
    if not isinstance(obj, dict):
        return None, None, f"{path}:{n}: not a JSON object"
    key = obj.get("id")
    if isinstance(key, bool) or not isinstance(key, str | int) or (isinstance(key, str) and not key.strip()):
        return None, None, f"{path}:{n}: needs an 'id' (a string or an integer)"
    return str(key), obj, None


def _records(p: Path, out: Loaded) -> Iterator[tuple[str, str, dict]]:
    """``(where, id, object)`` for each usable line of ``p``; blank lines skipped, bad ones added to ``out``."""
    for n, line in enumerate(_read_lines(p), start=1):
        if not line.strip():
            continue
        key, obj, err = _object(p, n, line)
        if err:
            out.problems.append(err)
            continue
        yield f"{p}:{n}", key, obj


def load_predictions(path: Path | str) -> Loaded:
    """``{id: text}`` from ``{"id", "text"}`` lines; bad lines and repeated ids reported and skipped."""
    p = Path(path)
    out = Loaded({})
    for where, key, obj in _records(p, out):
        text = obj.get("text")
        if not isinstance(text, str):
            out.problems.append(f"{where}: 'text' must be a string (id {key})")
        elif key in out.items:
            out.problems.append(f"{where}: id {key} already has a prediction; this one is skipped")
        else:
            out.items[key] = text
    return out


def load_references(path: Path | str) -> Loaded:
    """``{id: [refs]}`` from ``{"id", "refs": [...]}`` (or ``{"id", "text"}``) lines; bad lines reported."""
    p = Path(path)
    out = Loaded({})
    for where, key, obj in _records(p, out):
        refs = obj.get("refs", None)
        if refs is None and isinstance(obj.get("text"), str):
            refs = [obj["text"]]
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            out.problems.append(f"{where}: 'refs' must be a non-empty list of strings (id {key})")
            continue
        out.items.setdefault(key, []).extend(refs)
    return out


@dataclass(kw_only=True)
class TextEval(EvalResult):
    """BLEU-1..4, ROUGE-L and CIDEr (``metrics``; primary ``cider``) of the ids both files hold."""

    primary_metric: str = "cider"
    ids: list[str]
    preds_without_ref: list[str]
    refs_without_pred: list[str]
    problems: list[str]
    per_item: dict[str, dict[str, float]]
    texts: dict[str, str] = field(default_factory=dict)
    refs: dict[str, list[str]] = field(default_factory=dict)
    image_text: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "preds_without_ref": self.preds_without_ref,
            "refs_without_pred": self.refs_without_pred,
            "skipped_lines": self.problems,
            **({"image_text": self.image_text} if self.image_text is not None else {}),
            "greater_is_better": self.greater_is_better,
        }


def evaluate_files(pred_path: Path | str, ref_path: Path | str, tokenizer: str = "ptb") -> TextEval:
    """Score the predictions of ``pred_path`` against ``ref_path`` on the ids both hold (in the order of the
    prediction file). Raises :class:`TextEvalError` when nothing can be scored and
    :class:`photopoet.metrics.text.TokenizerError` when the tokenizer cannot run."""
    from photopoet.metrics.text import cider, rouge_l, text_metrics, tokenize, tokenizer_description

    preds = load_predictions(pred_path)
    refs = load_references(ref_path)
    ids = [k for k in preds.items if k in refs.items]
    without_ref = [k for k in preds.items if k not in refs.items]
    without_pred = [k for k in refs.items if k not in preds.items]
    problems = preds.problems + refs.problems
    if not ids:
        why = f"; {len(problems)} lines skipped, e.g. {problems[0]}" if problems else ""
        raise TextEvalError(
            f"no id has both a prediction ({pred_path}: {len(preds.items)} ids) and references "
            f"({ref_path}: {len(refs.items)} ids){why}"
        )
    flat = [preds.items[k] for k in ids] + [r for k in ids for r in refs.items[k]]
    toks = tokenize(flat, tokenizer)
    p_toks = toks[: len(ids)]
    r_toks, i = [], len(ids)
    for k in ids:
        m = len(refs.items[k])
        r_toks.append(toks[i : i + m])
        i += m
    metrics = text_metrics(p_toks, r_toks)
    metrics["tokenizer"] = tokenizer_description(tokenizer)
    _, rl = rouge_l(p_toks, r_toks)
    _, cd = cider(p_toks, r_toks)
    per = {k: {"rougeL": a, "cider": b} for k, a, b in zip(ids, rl, cd, strict=True)}
    texts = {k: preds.items[k] for k in ids}
    return TextEval(
        metrics=metrics,
        primary_metric=str(metrics["primary"]),
        ids=ids,
        preds_without_ref=without_ref,
        refs_without_pred=without_pred,
        problems=problems,
        per_item=per,
        texts=texts,
        refs={k: refs.items[k] for k in ids},
    )


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".bmp")


def find_images(ids: list[str], folder: Path | str) -> tuple[dict[str, Path], list[str]]:
    """The photo of each id in ``folder``: the file named exactly the id, else one whose stem is the id (with an
    image suffix). Returns the found paths and the ids without one."""
    root = Path(folder)
    if not root.is_dir():
        raise TextEvalError(f"{root}: not a folder of photos")
    by_stem: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(p.stem, p)
    found, missing = {}, []
    for k in ids:
        exact = root / k
        if "/" not in k and exact.is_file():
            found[k] = exact
        elif k in by_stem:
            found[k] = by_stem[k]
        else:
            missing.append(k)
    return found, missing


def score_images(res: TextEval, folder: Path | str, scorer, *, progress: bool = False) -> dict[str, Any]:
    """Image-text scores (see :class:`photopoet.metrics.clipscore.ImageTextScorer`) of the ids whose photo is
    in ``folder``; unreadable photos and ids without a photo are listed and left out. Photos are read and
    embedded 16 at a time (never all held in memory)."""
    import numpy as np
    from tqdm import tqdm

    from photopoet.metrics.clipscore import load_image

    found, missing = find_images(res.ids, folder)
    ids, vecs, unreadable = [], [], []
    batch: list = []

    def flush() -> None:
        if batch:
            vecs.append(scorer.image_vectors([im for _, im in batch]))
            ids.extend(k for k, _ in batch)
            batch.clear()

    for k, path in tqdm(list(found.items()), desc="photos", unit="photo", disable=not progress):
        try:
            batch.append((k, load_image(path)))
        except ValueError as e:
            unreadable.append(f"{path}: {e}")
        if len(batch) == 16:
            flush()
    flush()
    if not ids:
        raise TextEvalError(f"{folder}: no readable photo for any of the {len(res.ids)} ids")
    out = scorer.score_vectors(np.concatenate(vecs), [res.texts[k] for k in ids], [res.refs[k] for k in ids])
    per = out.pop("per_item")
    out["per_item"] = {k: {name: vals[i] for name, vals in per.items()} for i, k in enumerate(ids)}
    out["ids_without_photo"] = missing
    out["unreadable_photos"] = unreadable
    return out
