"""Captions against references from two JSON-lines files, for ``photopoet eval text``.

Predictions: one ``{"id": ..., "text": "..."}`` a line. References: one ``{"id": ..., "refs": ["...", ...]}`` a
line (``"text": "..."`` is taken as a single reference; several lines with one id add up). Ids are compared as
strings (``1`` and ``"1"`` are the same item). A line that cannot be used is reported as ``file:line: reason``
and skipped; so is a second prediction for an id. Items with a prediction but no reference, or the reverse,
are listed and left out of the scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TextEvalError(ValueError):
    """Nothing can be scored: a file cannot be read, or no id has both a prediction and a reference."""


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


def load_predictions(path: Path | str) -> Loaded:
    """``{id: text}`` from ``{"id", "text"}`` lines; bad lines and repeated ids reported and skipped."""
    p = Path(path)
    out = Loaded({})
    for n, line in enumerate(_read_lines(p), start=1):
        if not line.strip():
            continue
        key, obj, err = _object(p, n, line)
        if err:
            out.problems.append(err)
            continue
        text = obj.get("text")
        if not isinstance(text, str):
            out.problems.append(f"{p}:{n}: 'text' must be a string (id {key})")
        elif key in out.items:
            out.problems.append(f"{p}:{n}: id {key} already has a prediction; this one is skipped")
        else:
            out.items[key] = text
    return out


def load_references(path: Path | str) -> Loaded:
    """``{id: [refs]}`` from ``{"id", "refs": [...]}`` (or ``{"id", "text"}``) lines; bad lines reported."""
    p = Path(path)
    out = Loaded({})
    for n, line in enumerate(_read_lines(p), start=1):
        if not line.strip():
            continue
        key, obj, err = _object(p, n, line)
        if err:
            out.problems.append(err)
            continue
        refs = obj.get("refs", None)
        if refs is None and isinstance(obj.get("text"), str):
            refs = [obj["text"]]
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            out.problems.append(f"{p}:{n}: 'refs' must be a non-empty list of strings (id {key})")
            continue
        out.items.setdefault(key, []).extend(refs)
    return out


@dataclass
class TextEval:
    metrics: dict[str, Any]
    ids: list[str]
    preds_without_ref: list[str]
    refs_without_pred: list[str]
    problems: list[str]
    per_item: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "preds_without_ref": self.preds_without_ref,
            "refs_without_pred": self.refs_without_pred,
            "skipped_lines": self.problems,
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
    return TextEval(metrics, ids, without_ref, without_pred, problems, per)
