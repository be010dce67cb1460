"""The posts `photopoet run` makes (cull, then group the keepers) against the club's own posts, on a split by post.

The club's posts are split by post (never by photo) into two halves with a fixed seed. Each half is run through
the real run path (``pipeline.cull_and_group``: the same function `run` and `photopoet group` call) as if it
were a folder of its own, and scored on the photos culling kept: ARI, NMI, purity, the number of posts and the
share of single-photo posts beside the club's own. The grouping choices (how k is chosen, the cut height,
file-name order, the singleton policy) are chosen on one half and reported on the other: the choice maximises
ARI among the settings whose post count is within 30% of the club's and whose single-photo share is at most the
club's plus 10 points on the choosing half. "before" is today's grouping (silhouette k, content + colour only,
singletons kept). The ARI difference after - before carries a paired bootstrap interval (resampling the club's
posts). "k stability" drops 8 random kept photos (5 draws) and reports the range of post counts. The club
photos carry no EXIF capture time (Instagram exports), so time plays no part here.

    PYTHONPATH=src .venv/bin/python benchmarks/group_eval.py [--club ../shared/club] [--ocr off|on|both]
        [--markdown docs/grouping.md]

``--ocr on`` reads the text in the photos as a run does (``scene.ocr``: the photos that may be posters, about
1.2 s a photo once, then cached); ``off`` sets ``scene.ocr`` off; the default measures both. The poster kind and
score come from the image statistics either way; the text read feeds the poster rule only through
``group.alone_text_lines`` (0 by default).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.core.cache import with_cache
from photopoet.evaluation.grouping import (
    evaluate_run_path,
    load_truth,
    match_truth,
    paired_bootstrap,
    post_shape,
    subset_understanding,
)
from photopoet.pipeline import with_scenes
from photopoet.stages.cull import cull
from photopoet.stages.group import group_understood
from photopoet.stages.ingest import ingest
from photopoet.stages.understand import ModelSet, understand

# today's main, as config
BEFORE = {"k_choice": "silhouette", "order_weight": 0.0, "singletons": "keep", "alone_posters": False}
CUTS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
ORDER = ((0.0, 8), (0.5, 16), (1.0, 16), (1.0, 32), (1.5, 32))
SINGLE = (("keep", 1.0), ("merge", 1.3))
ALONE = ((False, 0.9, 0), (True, 0.95, 0), (True, 0.98, 0), (True, 0.9, 12))  # posters alone: score, text lines


def grid() -> list[dict]:
    ks = [{"k_choice": "silhouette"}] + [{"k_choice": "distance", "cut_distance": c} for c in CUTS]
    return [
        {**k, "order_weight": w, "order_window": win, "singletons": s, "merge_slack": sl}
        | {"alone_posters": a, "alone_poster_score": sc, "alone_text_lines": tl}
        for k, (w, win), (s, sl), (a, sc, tl) in itertools.product(ks, ORDER, SINGLE, ALONE)
    ]


def _cfg(group: dict):
    return load_config(overrides={"group": group})


def club_like(s: dict) -> bool:
    return (
        abs(s["posts"] - s["club_posts"]) <= 0.3 * s["club_posts"]
        and s["single_share"] <= s["club_single_share"] + 0.10
    )


HEAD = """# Grouping: the posts `photopoet run` makes, against the club's own

Produced by `benchmarks/group_eval.py` (issue 21); rerun it to refresh this page. Each club half (split by
post, seed 0) goes through the real run path, `pipeline.cull_and_group` (the function `run`, `photopoet group`
and `photopoet eval grouping` call), as a folder of its own; scores are on the photos culling kept. A "chosen
on X" row is the setting with the best ARI on half X among those whose post count and single-photo share are
club-like there, reported on the other half; "shipped defaults" are default_config.yaml's `group:` section,
which took the k choice and file order both halves chose and the poster rule chosen on B, so on half B (and
partly A) those rows are in-sample: the "chosen on" rows are the held-out figures. "file order off" is the
best setting without file order (`order_weight: 0`: content, colour and posters only), chosen the same way.
The bracket is the paired bootstrap 95% interval of ARI after - before, resampling the club's posts (1000
draws). The club exports carry no EXIF capture time; their file names start with Instagram's media number,
which follows posting order, so file order here is close to posting order (a camera's IMG_0001... follows
shooting order).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    ap.add_argument(
        "--ocr", choices=("off", "on", "both"), default="both", help="scenes without and/or with poster text read"
    )
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--markdown", type=Path, help="also write the page (docs/grouping.md) to this file")
    args = ap.parse_args()
    cfg0 = load_config()
    posts = load_truth(args.club / "posts.jsonl")
    order = np.random.default_rng(0).permutation(len(posts))
    halves = {"A": set(order[: len(posts) // 2].tolist()), "B": set(order[len(posts) // 2 :].tolist())}
    lines: list[str] = [HEAD]

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    def job(cache, cache_dir):
        ing = ingest(args.club / "images", cfg0.ingest, cache, progress=False)
        und = understand(ing.photos, cfg0, cache, ModelSet(cfg0, cache_dir), progress=False)
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.ocr]
        for ocr in modes:
            cfg = cfg0.model_copy(update={"scene": cfg0.scene.model_copy(update={"ocr": ocr})})
            title = "with poster text read (OCR, as a run reads it)" if ocr else "without OCR (scene.ocr off)"
            say(f"## Scenes {title}")
            say()
            one_mode(with_scenes(und, cfg, cache, progress=True), cache, say)

    def one_mode(und, cache, say) -> None:
        truth = match_truth(und.photos, args.club / "images", posts)
        data = {}
        for h, keep in halves.items():
            rows = [i for i, t in enumerate(truth) if t in keep]
            u = subset_understanding(und, rows)
            t = [truth[i] for i in rows]
            culled = cull(
                u.photos, cfg0.cull, cache, features=u.features, progress=False
            )  # cull reads no group setting
            data[h] = (u, t, culled)

        def tune_score(h: str, g: dict) -> dict:
            u, t, culled = data[h]
            kept = culled.kept()
            lab = group_understood(replace(u, photos=culled.photos), _cfg(g).group, rows=kept).labels.tolist()
            tt = [t[i] for i in kept]
            from sklearn.metrics import adjusted_rand_score

            s = {"ari": adjusted_rand_score(tt, lab)}
            s["posts"], s["single_share"] = post_shape(lab)
            s["club_posts"], s["club_single_share"] = post_shape(tt)
            return s

        candidates = grid()
        chosen, content_only = {}, {}
        for tune in "AB":
            scored = [(g, tune_score(tune, g)) for g in candidates]
            ok = [x for x in scored if club_like(x[1])] or scored
            chosen[tune] = max(ok, key=lambda x: x[1]["ari"])[0]
            plain = [x for x in scored if x[0]["order_weight"] == 0]
            ok = [x for x in plain if club_like(x[1])] or plain
            content_only[tune] = max(ok, key=lambda x: x[1]["ari"])[0]
            print(f"chosen on {tune}: {chosen[tune]}", file=sys.stderr, flush=True)

        shipped = cfg0.group.model_dump()
        say(
            "| report half (chosen on) | kept photos (set aside) | grouping | posts (club) | single-photo share "
            "(club) | ARI | NMI | purity | ARI after - before [95% CI] |"
        )
        say("|---|---|---|---|---|---|---|---|---|")
        stab = []
        for tune, report in (("A", "B"), ("B", "A")):
            u, t, _ = data[report]
            before = evaluate_run_path(u, t, _cfg(BEFORE), cache)
            rows = [("before (today's main)", before, None)]
            for name, g in (
                ("chosen on " + tune, chosen[tune]),
                ("shipped defaults", {}),
                ("file order off, chosen on " + tune, content_only[tune]),
            ):
                r = evaluate_run_path(u, t, _cfg(g), cache)
                rows.append((name, r, paired_bootstrap(before.truth, before.pred, r.pred, n=args.boot)))
            for name, r, b in rows:
                s = r.scores
                diff = "" if b is None else f"{b['diff']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}]"
                say(
                    f"| {report} ({tune}) | {len(r.kept)} ({r.set_aside}) | {name} | {s['posts']:.0f} "
                    f"({s['club_posts']:.0f}) | {s['single_share']:.2f} ({s['club_single_share']:.2f}) | "
                    f"{s['ari']:.3f} | {s['nmi']:.3f} | {s['purity']:.3f} | {diff} |"
                )
            for name, g in (("before", BEFORE), ("shipped", {})):
                counts = []
                for seed in range(5):
                    keep = sorted(np.random.default_rng(seed).permutation(len(u.photos))[8:].tolist())
                    r = evaluate_run_path(subset_understanding(u, keep), [t[i] for i in keep], _cfg(g), cache)
                    counts.append(r.scores["posts"])
                full = before if name == "before" else rows[2][1]
                stab.append(f"| {report} | {name} | {full.scores['posts']:.0f} | {min(counts):.0f}-{max(counts):.0f} |")
        say()
        say("k stability: posts on the half, and their range when 8 random photos leave (5 draws):")
        say()
        say("| half | grouping | posts | posts with 8 photos fewer |")
        say("|---|---|---|---|")
        for line in stab:
            say(line)
        say()
        say(f"chosen on A: {chosen['A']}")
        say()
        say(f"chosen on B: {chosen['B']}")
        say()
        say(f"file order off, chosen on A: {content_only['A']}")
        say()
        say(f"file order off, chosen on B: {content_only['B']}")
        say()
        say("shipped: " + ", ".join(f"{k}={shipped[k]}" for k in sorted(set(chosen["A"]))))

        say()

    with_cache(cfg0, job)
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
