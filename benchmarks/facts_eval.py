"""How often the "no invented facts" rule would reject the club's OWN captions: its false-rejection rate on
perfectly club-like text.

Each club caption is checked (:func:`photopoet.stages.write.facts.invented_facts`) against its own post's
sources as a run would have them: the event, the club's labels, the post's hashtags and the default config's
words, plus the owner's recurring names (:func:`owner_names`) learnt from the TRAIN split's captions only (for a
train post, from the other train posts: its own caption never vouches for itself). Split by post as in
``caption_eval.py`` (test: first hex digit of sha1(post_id) below 4). Each caption is checked whole and as the
writer would see a generated one: cut to the first 200 characters (``clean_caption``).

Optionally (``--generated FILE``) the per-post outputs of ``caption_eval.py`` are checked the same way: how
many generated captions the rule rejects, and which facts.

    .venv/bin/python benchmarks/facts_eval.py [--club ../shared/club] [--min-texts 3]
        [--generated out/caption_eval.jsonl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

from photopoet.config import load_config
from photopoet.stages.write.clean import clean_caption
from photopoet.stages.write.facts import FactSources, config_words, invented_facts, owner_names, post_sources


def is_test(post_id: str) -> bool:
    return int(hashlib.sha1(post_id.encode()).hexdigest()[0], 16) < 4


def text_of(caption: str, max_chars: int) -> str:
    return clean_caption(caption.replace("\n", " "), max_chars=max_chars, min_chars=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--club", type=Path, default=Path("../shared/club"))
    ap.add_argument("--min-texts", type=int, default=3, help="owner names: stated by at least this many captions")
    ap.add_argument("--generated", type=Path, default=None, help="caption_eval.py per-post outputs (JSON lines)")
    ap.add_argument("--show", type=int, default=0, help="print this many flagged captions per split")
    args = ap.parse_args()
    posts = [json.loads(x) for x in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines() if x]
    cfg = load_config(None).caption
    conf = config_words(cfg)
    train = [p for p in posts if not is_test(p["post_id"])]
    owner_all = owner_names([text_of(p["caption"], 2000) for p in train], args.min_texts)
    print(f"{len(posts)} posts ({len(train)} train); owner names from train captions (>= {args.min_texts}):")
    print("  " + ", ".join(owner_all))

    def sources(p: dict, owner: list[str]) -> FactSources:
        return FactSources.of(
            post_sources(
                p.get("event"),
                [*p.get("labels", []), *p.get("hashtags", [])],
                config_words=conf,
                owner_words=owner,
                n_photos=len(p.get("images", [])),
            )
        )

    print("\n| split | owner names | caption | posts | flagged | rate | facts flagged (names / numbers) |")
    print("|---|---|---|---:|---:|---:|---|")
    shown: list[tuple[str, str, list[str]]] = []
    for split in ("train", "test"):
        chosen = [p for p in posts if (split == "test") == is_test(p["post_id"])]
        for use_owner in (False, True):
            for cut in (200, 2000):
                flagged = 0
                kinds: Counter[str] = Counter()
                for p in chosen:
                    owner: list[str] = []
                    if use_owner:
                        others = [text_of(q["caption"], 2000) for q in train if q["post_id"] != p["post_id"]]
                        owner = owner_names(others, args.min_texts)
                    text = text_of(p["caption"], cut)
                    bad = invented_facts(text, sources(p, owner))
                    if bad:
                        flagged += 1
                        if use_owner and cut == 200:
                            shown.append((split, text, bad))
                    for b in bad:
                        kinds["number" if b[:1].isdigit() else "name"] += 1
                print(
                    f"| {split} | {'yes' if use_owner else 'no'} | {'200 chars' if cut == 200 else 'whole'} | "
                    f"{len(chosen)} | {flagged} | {flagged / max(len(chosen), 1):.0%} | "
                    f"{kinds['name']} / {kinds['number']} |"
                )
    for split, text, bad in [s for s in shown if s[0] == "test"][: args.show] + [s for s in shown if s[0] == "train"][
        : args.show
    ]:
        print(f"\n[{split}] {text}\n  invented: {bad}")
    if args.generated:
        by_id = {p["post_id"]: p for p in posts}
        rows = [json.loads(x) for x in args.generated.read_text(encoding="utf-8").splitlines() if x]
        tally: Counter[str] = Counter()
        n: Counter[str] = Counter()
        for r in rows:
            p = by_id.get(r.get("post_id", ""))
            if p is None:
                continue
            for mode, rec in r.items():
                if not isinstance(rec, dict) or "caption" not in rec:
                    continue
                n[mode] += 1
                bad = invented_facts(rec["caption"], sources(p, owner_all))
                if bad:
                    tally[mode] += 1
                    print(f"[{mode}] {rec['caption']!r}\n  invented: {bad}")
        for mode in n:
            print(f"generated ({mode}): {tally[mode]} of {n[mode]} captions state invented facts")


if __name__ == "__main__":
    main()
