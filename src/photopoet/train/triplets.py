"""A multi-image dataset: groups of three similar photos and one description merged from their captions.

``build_triplets(photos_dir, captions_file, out_file, cfg, generator)``:

1. **Photos**: ingested and understood with the run's cache (a second build, or one after ``photopoet run``,
   reuses the image features; only new photos go through the image model). Only photos with a caption take
   part.
2. **Captions file** (JSON lines), either per photo ``{"image": "a.jpg", "caption": "..."}`` or per post
   ``{"images": ["a.jpg", ...], "caption": "..."}`` (the club's ``posts.jsonl``: every photo of the post takes
   its caption). Names are paths relative to the photo folder, or bare file names. Lines that cannot be used
   are reported as ``file:line: reason`` and skipped; a photo named twice keeps its first caption.
3. **Groups**: cosine kNN over the image features (``triplets.neighbours``). Photos are taken tightest first
   (by the mean similarity to their two nearest neighbours); a photo and the two nearest photos not yet used
   form a group when every two of the three lie within ``[min_similarity, max_similarity)`` (above the
   maximum they are near-duplicates: an edited copy teaches nothing). Each photo is in at most one group.
4. **Merged caption**: the generator gets the haiku stage's merged-description prompt (one concise sentence
   of what all the images depict together) with the three captions, each cut to ``caption_chars``, and its
   first sentence is kept. A continuation that ran into ``max_new_tokens`` before its first sentence ended,
   cleaned to nothing, or naming no word of the captions, is replaced by the first sentence of the group's
   central caption (``"merged_by": "fallback"``). Three photos of one post often share its caption: there is
   nothing to merge, so that caption's first sentence is the description and the generator is not asked
   (``"merged_by": "identical"``).

Output: one JSON line per group ``{"group_id", "image_ids", "captions", "merged_caption", "merged_by",
"similarity"}``; ``group_id`` is a hash of the three image ids, so the same photos give the same id. The file
is appended one complete line at a time (flushed and synced); a rerun skips the groups already written and
drops a half-written last line left by a killed run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photopoet.config import Config, TripletsConfig
from photopoet.errors import TripletsError

# ------------------------------------------------------------------------------------------------ captions


@dataclass
class Captions:
    by_name: dict[str, str]  # as written in the file (relative path or bare name) -> caption
    problems: list[str] = field(default_factory=list)


def load_captions(path: Path | str) -> Captions:
    """Captions per photo name from per-photo or per-post JSON lines; bad lines reported, not fatal."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TripletsError(f"{p}: no such file") from None
    except UnicodeDecodeError as e:
        raise TripletsError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise TripletsError(f"{p}: cannot read: {e.strerror or e}") from None
    out = Captions({})
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            out.problems.append(f"{p}:{n}: not JSON ({e.msg})")
            continue
        if not isinstance(obj, dict):
            out.problems.append(f"{p}:{n}: not a JSON object")
            continue
        cap = obj.get("caption")
        if not isinstance(cap, str) or not cap.strip():
            out.problems.append(f"{p}:{n}: needs a non-empty 'caption' string")
            continue
        names = obj.get("images", [obj["image"]] if "image" in obj else None)
        if not isinstance(names, list) or not names or not all(isinstance(x, str) and x.strip() for x in names):
            out.problems.append(f"{p}:{n}: needs 'image' (a file name) or 'images' (a list of file names)")
            continue
        for name in names:
            out.by_name.setdefault(name.replace("\\", "/"), " ".join(cap.split()))
    return out


def match_captions(paths: Sequence[Path], root: Path, caps: Captions) -> tuple[list[str | None], list[str]]:
    """Each photo's caption (by path relative to ``root``, else by file name; None without one) and its id (the
    relative POSIX path)."""
    by_bare: dict[str, str] = {}
    for name, cap in caps.by_name.items():
        by_bare.setdefault(Path(name).name, cap)
    out, ids = [], []
    for p in paths:
        try:
            rel = Path(p).relative_to(root).as_posix()
        except ValueError:
            rel = Path(p).name
        ids.append(rel)
        out.append(caps.by_name.get(rel, by_bare.get(Path(p).name)))
    return out, ids


# -------------------------------------------------------------------------------------------------- groups


def knn(features: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """([N, k] neighbour indices, [N, k] cosines), best first, self excluded; exact, in row chunks."""
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    k = min(k, n - 1)
    idx = np.zeros((n, k), dtype=np.int64)
    sim = np.zeros((n, k), dtype=np.float32)
    if k <= 0:
        return idx, sim
    for s in range(0, n, chunk):
        block = x[s : s + chunk] @ x.T
        rows = np.arange(block.shape[0])
        block[rows, rows + s] = -np.inf
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx[s : s + chunk] = np.take_along_axis(part, order, axis=1)
        sim[s : s + chunk] = np.take_along_axis(vals, order, axis=1)
    return idx, sim


def form_triplets(features: np.ndarray, cfg: TripletsConfig) -> list[tuple[list[int], float]]:
    """Disjoint groups of three row indices (seed first) and their mean pairwise cosine, tightest seeds first."""
    x = np.asarray(features, dtype=np.float32)
    if len(x) < 3:
        return []
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    idx, sim = knn(x, cfg.neighbours)
    ok = (sim >= cfg.min_similarity) & (sim < cfg.max_similarity)
    top2 = np.where(ok, sim, -np.inf)
    density = np.sort(top2, axis=1)[:, ::-1][:, :2].mean(axis=1)
    used = np.zeros(len(x), dtype=bool)
    groups = []
    for seed in np.argsort(-density, kind="stable"):
        if used[seed] or not np.isfinite(density[seed]):
            continue
        cands = [int(j) for j, good in zip(idx[seed], ok[seed], strict=True) if good and not used[j]]
        pick = None
        for a_pos, a in enumerate(cands):
            for b in cands[a_pos + 1 :]:
                ab = float(x[a] @ x[b])
                if cfg.min_similarity <= ab < cfg.max_similarity:
                    pick = (a, b)
                    break
            if pick:
                break
        if pick is None:
            continue
        members = [int(seed), *pick]
        used[members] = True
        a, b, c = members
        sims = [float(x[a] @ x[b]), float(x[a] @ x[c]), float(x[b] @ x[c])]
        groups.append((members, float(np.mean(sims))))
    return groups


def group_id(image_ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(sorted(image_ids)).encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------ merging


def cut(text: str, n: int) -> str:
    """``text`` cut to at most ``n`` characters at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= n:
        return text
    head = text[:n].rsplit(" ", 1)[0]
    return head or text[:n]


def whole_first_sentence(text: str) -> str | None:
    """The first sentence of ``text`` when it ends (., ! or ?), else None."""
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip())
    return m.group(1).strip() if m else None


def first_sentence(text: str) -> str:
    return whole_first_sentence(text) or text.strip()


def merge_captions(captions: Sequence[str], generator, cfg: TripletsConfig, central: int = 0) -> tuple[str, str]:
    """(merged caption, "generator", "fallback" or "identical"): the first sentence of the generator's answer
    to the haiku stage's merged-description prompt; the central caption's first sentence when the answer is
    unusable, or when the captions are one text (nothing to merge, the generator is not asked)."""
    from photopoet.stages.write.clean import clean_caption
    from photopoet.stages.write.haiku import _grounded, describe_prompt

    shown = [[cut(c, cfg.caption_chars)] for c in captions]
    fallback = first_sentence(cut(captions[central], cfg.caption_chars)) or cut(captions[central], 160)
    if len({" ".join(c.split()) for c in captions}) == 1:
        return fallback, "identical"
    if generator is None:
        return fallback, "fallback"
    raw = generator.generate([describe_prompt(shown)], max_new_tokens=cfg.max_new_tokens, temperature=0.0)[0][0]
    sentence = whole_first_sentence(raw.strip().split("\n")[0])  # None: cut by max_new_tokens mid-sentence
    text = clean_caption(sentence, max_chars=300, min_chars=8) if sentence else ""
    if text and _grounded(text, shown, ()):
        return text, "generator"
    return fallback, "fallback"


# ------------------------------------------------------------------------------------------------- output


def read_done(out_file: Path) -> tuple[set[str], list[str]]:
    """Group ids already in ``out_file``; a half-written last line (a killed run) is cut off the file.
    Returns (ids, notes)."""
    notes: list[str] = []
    if not out_file.exists():
        return set(), notes
    data = out_file.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data[: data.rfind(b"\n") + 1]
        with open(out_file, "r+b") as f:
            f.truncate(len(keep))
        notes.append(f"{out_file}: dropped a half-written last line (a stopped run); it is made again")
        data = keep
    done = set()
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        try:
            gid = json.loads(line).get("group_id")
        except (ValueError, AttributeError):
            notes.append(f"{out_file}:{n}: not a group line; left as is")
            continue
        if isinstance(gid, str):
            done.add(gid)
    return done, notes


def append_line(out_file: Path, obj: dict) -> None:
    """One complete JSON line, written in one call, flushed and synced."""
    data = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    with open(out_file, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class TripletsResult:
    groups: int  # triplets the photos form
    written: int  # written this run
    skipped_done: int  # already in the output file
    photos: int  # photos read
    with_caption: int  # of those, with a caption
    generated: int  # merged by the generator this run (the rest: fallback, or identical captions)
    problems: list[str]  # caption lines skipped, photos not read, notes on the output file
    captions_unmatched: int  # caption entries naming no photo in the folder


def build_triplets(
    photos_dir: Path | str,
    captions_file: Path | str,
    out_file: Path | str,
    cfg: Config,
    *,
    generator=None,
    make_generator: Callable[[], object] | None = None,
    max_groups: int = 0,
    progress: bool = True,
) -> TripletsResult:
    """Build (or continue) the triplets file; see the module's docstring. ``generator`` or ``make_generator``
    (called only when some group still needs writing) gives the model; with neither, every merged caption is
    the fallback."""
    from tqdm import tqdm

    from photopoet.errors import RunError
    from photopoet.pipeline import understand_folder

    root, out = Path(photos_dir), Path(out_file)
    caps = load_captions(captions_file)
    try:
        ing, und = understand_folder(root, cfg, progress=progress)
    except RunError as e:
        raise TripletsError(str(e)) from None
    problems = list(caps.problems) + [f"{e.path}: {e.reason}" for e in ing.excluded]
    paths = [Path(u.photo.path) for u in und.photos]
    captions, ids = match_captions(paths, root, caps)
    names_seen = set(ids) | {Path(i).name for i in ids}
    unmatched = sum(1 for n in caps.by_name if n not in names_seen and Path(n).name not in names_seen)
    rows = [i for i, c in enumerate(captions) if c]
    if len(rows) < 3:
        raise TripletsError(
            f"{len(rows)} of {len(paths)} photos in {root} have a caption in {captions_file}; a triplet needs three"
        )
    groups = form_triplets(und.features[rows], cfg.triplets)
    if max_groups:
        groups = groups[:max_groups]
    out.parent.mkdir(parents=True, exist_ok=True)
    done, notes = read_done(out)
    problems += notes
    todo = []
    for members, s in groups:
        m = [rows[i] for i in members]
        image_ids = [ids[i] for i in m]
        gid = group_id(image_ids)
        if gid not in done:
            todo.append((gid, m, image_ids, s))
    if todo and generator is None and make_generator is not None:
        generator = make_generator()
    generated = 0
    for gid, m, image_ids, s in tqdm(todo, desc="triplets", unit="group", disable=not progress):
        caps3 = [str(captions[i]) for i in m]
        merged, by = merge_captions(caps3, generator, cfg.triplets, central=0)
        generated += by == "generator"
        record = {
            "group_id": gid,
            "image_ids": image_ids,
            "captions": caps3,
            "merged_caption": merged,
            "merged_by": by,
            "similarity": round(s, 4),
        }
        append_line(out, record)
    return TripletsResult(
        groups=len(groups),
        written=len(todo),
        skipped_done=len(groups) - len(todo),
        photos=len(paths),
        with_caption=len(rows),
        generated=generated,
        problems=problems,
        captions_unmatched=unmatched,
    )
