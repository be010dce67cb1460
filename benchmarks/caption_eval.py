"""Captions on the club's posts: template vs generative vs hybrid, ROUGE-L and BLEU, agreement threshold, speed.

Split by post (never by photo): a post is in the test split when the first hex digit of sha1(post_id) is
below 4 (about a quarter), the rest is the train split. Style examples come only from the train split; the
hybrid threshold is calibrated only on the train split.

Calibration: for every train post, the image-text agreement (cosine of the post's ConSE image vector, the
mean of its photos' vectors, and the caption's text embedding) of its own caption ("match") and of the next
train post's caption ("mismatch"). The threshold is the value that best separates the two (Youden's J: true
positive rate minus false positive rate, highest). A generated caption below it agrees with its photos no more
than a caption of another post typically does.

Metrics: ROUGE-L F1 (``rouge-score``, its default tokeniser: lower case, runs of letters and digits, Porter
stemmer on), corpus BLEU (``sacrebleu``, tokeniser 13a, lower-cased, 0-100), and BLEU-4 and CIDEr-D from
``photopoet.metrics.text`` (pycocoevalcap's definitions on its PTB tokens; needs Java) against the club's caption with
@handles, URLs and hashtags removed (:func:`clean_caption`, no length cut); the swipe hint is not scored.
Generation: one call per post for "generative"; "hybrid" reuses the same continuations (memoised), so the two
differ only by the threshold. Seconds per caption are wall-clock on this machine, model load excluded.

Labels in the prompts and templates (``--labels``): ``run`` (default), the labels ``photopoet run`` gives the
post's photos (zero-shot labels from the config's label list, kept when they are the best label of half the
photos): what the product writes with; ``data``, the first three of the club's own labels (hashtag words a run
never produces; the figures before this option existed were made that way). The event is the club's own, as a
run on a folder named after the event would have it.

Scene (``--scene on``, the default): every mode is run twice, as before (no scene: the writers of the session
before the scene reached them) and "+ scene": the photos' scenes as ``photopoet run`` describes them (the shipped
OCR reads the photos whose statistics may be posters; ``pipeline.with_scenes``), summed up per post, with what
its posters say (``texts.with_poster_facts``: lines on most of the feed's posters and the style file's recurring
names brand them, never a title). ``--scene off`` runs only the first. The per-post file holds both, for
``compare_captions.py OUT OUT --mode-a template --mode-b "hybrid + scene"``.

With ``--adapter DIR`` (a style adapter from ``photopoet train style``, trained on the same train split) the
generative and hybrid modes are run again with the adapter on the generator and as many style examples as the
adapter was trained with (none by default): the "before" and "after" rows of one table. ``--no-base`` skips the
generative and hybrid rows without the adapter (the template row is always there).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/caption_eval.py [--club ../shared/club] [--limit N] [--out out/caption_eval.jsonl]
        [--adapter OUT/best] [--no-base] [--labels run|data] [--scene on|off] [--set cache.dir=DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photopoet.config import load_config
from photopoet.core.cache import with_cache
from photopoet.core.files import atomic_write_text
from photopoet.pipeline import post_scenes, understand_folder, with_scenes
from photopoet.records import Post, Understood
from photopoet.stages.write.caption import CaptionInput, CaptionWriter, agreement
from photopoet.stages.write.clean import clean_caption
from photopoet.stages.write.style import StyleBank, example_from_record
from photopoet.stages.write.template import post_labels
from photopoet.stages.write.texts import mean_vector, post_concepts, scene_words, with_poster_facts


def is_test(post_id: str) -> bool:
    return int(hashlib.sha1(post_id.encode()).hexdigest()[0], 16) < 4


def by_path_of(und) -> dict[str, Understood]:
    return {u.photo.path: u for u in und.photos}


def scene_of(members: list[Understood], post_id: str) -> Post:
    """The club post as a run's Post record with its photos' scene summary (no scene: ``scene`` None)."""
    paths = [u.photo.path for u in members]
    post = Post(post_id, paths, paths[0])
    return post_scenes([post], {u.photo.path: u for u in members})[0]


def reference(caption: str) -> str:
    return clean_caption(caption.replace("\n", " "), max_chars=2000, min_chars=1)


class MemoGenerator:
    """Wraps a generator; the same call twice is answered from memory (hybrid reuses generative's output)."""

    def __init__(self, gen):
        self.gen, self.name, self.memo, self.seconds = gen, gen.name, {}, 0.0

    def generate(self, prompts, **kw):
        key = (tuple(prompts), tuple(sorted(kw.items())))
        if key not in self.memo:
            t = time.perf_counter()
            self.memo[key] = self.gen.generate(prompts, **kw)
            self.seconds += time.perf_counter() - t
        return self.memo[key]


def coco_scores(hyps: list[str], refs: list[str]) -> dict:
    """BLEU-4 and CIDEr(-D) from photopoet.metrics.text on pycocoevalcap's PTB tokens (needs Java)."""
    from photopoet.metrics.text import score_texts

    return score_texts(hyps, [[r] for r in refs], tokenizer="ptb")


def youden_threshold(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float, float]:
    """(threshold, TPR, FPR) maximising TPR - FPR over the observed scores."""
    best = (0.0, 0.0, 0.0, -1.0)
    for t in np.unique(np.concatenate([pos, neg])):
        tpr, fpr = float((pos >= t).mean()), float((neg >= t).mean())
        if tpr - fpr > best[3]:
            best = (float(t), tpr, fpr, tpr - fpr)
    return best[0], best[1], best[2]


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
    ap.add_argument("--limit", type=int, default=0, help="score only the first N test posts (0: all)")
    ap.add_argument("--out", type=Path, default=Path("out/caption_eval.jsonl"), help="per-post outputs")
    ap.add_argument("--adapter", type=Path, default=None, help="also score with this style adapter (train style)")
    ap.add_argument("--no-base", action="store_true", help="skip generative and hybrid without the adapter")
    ap.add_argument(
        "--labels", choices=["run", "data"], default="run", help="labels: as `photopoet run` makes them, or the club's"
    )
    ap.add_argument("--scene", choices=["on", "off"], default="on", help="also write every mode with the scene")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config setting, e.g. models.engine=transformers or haiku.candidates=2 (repeatable)",
    )
    args = ap.parse_args()
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    posts = [json.loads(line) for line in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    cfg = load_config(overrides=settings(args.set))
    print(f"engine: {cfg.models.engine}, settings: {args.set or 'defaults'}")
    cache_dir = cfg.cache.resolved_dir()
    _, und = understand_folder(args.club / "images", cfg, progress=True)
    labels_before = {u.photo.path: u.labels for u in und.photos}  # before the scene: a poster keeps its labels
    if args.scene == "on":
        und = with_cache(cfg, lambda cache, _: with_scenes(und, cfg, cache, progress=True))
    idx = {Path(u.photo.path).name: i for i, u in enumerate(und.photos)}
    from photopoet.models import create_generator, create_text_encoder

    txt = create_text_encoder(cfg.models, cache_dir)
    rows = []
    for d in posts:
        members = [idx[x] for x in d["images"] if x in idx]
        if not members:
            continue
        rows.append(
            {
                "post": d,
                "vec": mean_vector([und.text_vectors[i] for i in members]),
                "concepts": post_concepts([list(und.photos[i].concepts) for i in members]),
                "n": len(members),
                "labels": post_labels([und.photos[i] for i in members]),
                "labels_before": post_labels(
                    [replace(und.photos[i], labels=labels_before[und.photos[i].photo.path]) for i in members]
                ),
                "ref": reference(d["caption"]),
                "scene": scene_of([und.photos[i] for i in members], d["post_id"]),
            }
        )
    train = [r for r in rows if not is_test(r["post"]["post_id"]) and r["ref"]]
    test = [r for r in rows if is_test(r["post"]["post_id"]) and r["ref"]]
    if args.limit:
        test = test[: args.limit]

    # --- calibration on the train split
    pos = np.array([agreement(txt, r["vec"], [r["ref"]])[0] for r in train])
    neg = np.array([agreement(txt, r["vec"], [train[(i + 1) % len(train)]["ref"]])[0] for i, r in enumerate(train)])
    thr, tpr, fpr = youden_threshold(pos, neg)
    print(f"\nposts: {len(rows)} ({len(train)} train, {len(test)} test), photos: {len(und.photos)}")
    print("\nImage-text agreement on the train split (own caption vs the next post's caption):\n")
    print("| pairs | n | mean | p10 | p50 | p90 |")
    print("|---|---|---|---|---|---|")
    for name, a in (("match", pos), ("mismatch", neg)):
        q = np.percentile(a, [10, 50, 90])
        print(f"| {name} | {len(a)} | {a.mean():.4f} | {q[0]:.4f} | {q[1]:.4f} | {q[2]:.4f} |")
    print(f"\nthreshold (Youden's J on train): {thr:.4f}  (keeps {tpr:.0%} of own captions, {fpr:.0%} of others)")

    # --- captions on the test split
    style = StyleBank([e for e in (example_from_record(r["post"]) for r in train) if e is not None], txt)
    if args.scene == "on":  # what the posters say, branded as a run over the whole feed would brand them
        with_facts = with_poster_facts([r["scene"] for r in rows], by_path_of(und), cfg.caption.known_facts)
        for r, post in zip(rows, with_facts, strict=True):
            r["scene"] = post
    gen = MemoGenerator(create_generator(cfg.models, cache_dir))
    gen.generate(["Hello"], max_new_tokens=1)  # load outside the timing
    gen.seconds = 0.0
    ccfg = cfg.caption.model_copy(update={"agreement_threshold": thr})
    writer = CaptionWriter(ccfg, generator=gen, text_encoder=txt, style=style)
    runs = [("template", writer, "template")]
    if not args.no_base:
        runs += [("generative", writer, "generative"), ("hybrid", writer, "hybrid")]
    agen = None
    if args.adapter is not None:
        from photopoet.core.adapters import adapter_meta, check_adapter_dir

        check_adapter_dir(args.adapter)
        n_ex = adapter_meta(args.adapter).get("prompt_examples", ccfg.style_examples)
        agen = MemoGenerator(gen.gen.adapted(args.adapter))
        acfg = ccfg.model_copy(update={"style_examples": n_ex})
        awriter = CaptionWriter(acfg, generator=agen, text_encoder=txt, style=style if n_ex else None)
        runs += [("generative + adapter", awriter, "generative"), ("hybrid + adapter", awriter, "hybrid")]
        trained = adapter_meta(args.adapter).get("labels", "data")
        print(f"adapter: {args.adapter} ({n_ex} style examples in its prompts, trained with {trained} labels)")
    if args.scene == "on":
        runs += [(f"{name} + scene", w, mode) for name, w, mode in runs]
    outs: dict[str, list] = {name: [] for name, _, _ in runs}
    lines = []
    for r in tqdm(test, desc="captions", unit="post"):
        d = r["post"]
        item = CaptionInput(
            id=d["post_id"],
            event=d.get("event"),
            labels=tuple(r["labels_before"]) if args.labels == "run" else tuple(d.get("labels") or [])[:3],
            concepts=tuple(r["concepts"]),
            n_photos=r["n"],
            image_vector=r["vec"],
        )
        rec = {"post_id": d["post_id"], "reference": r["ref"]}
        sc = r["scene"].scene if r.get("scene") is not None else None
        if sc is not None:
            rec["scene"] = sc.to_dict()
        seen = replace(item, scene=sc, scene_words=scene_words(sc))
        if args.labels == "run":
            seen = replace(seen, labels=tuple(r["labels"]))
        for name, w, mode in runs:
            res = w.write(seen if name.endswith("+ scene") else item, mode=mode)
            text = res.caption
            if ccfg.swipe_hint and r["n"] > 1 and text.endswith(ccfg.swipe_text):
                text = text[: -len(ccfg.swipe_text)].rstrip()
            outs[name].append((text, res.mode, res.score))
            rec[name] = {"caption": text, "mode": res.mode, "score": res.score, "rejected": res.rejected}
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    refs = [r["ref"] for r in test]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    bleu = BLEU(tokenize="13a", lowercase=True)
    print(f"\nCaptions on the test split ({len(test)} posts, {args.labels} labels, references: the club's captions):\n")
    print("| mode | ROUGE-L F1 | BLEU | BLEU-4 (coco) | CIDEr | mean agreement | generated share | mean chars |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, o in outs.items():
        hyps = [t for t, _, _ in o]
        rl = np.mean([scorer.score(ref, h)["rougeL"].fmeasure for ref, h in zip(refs, hyps, strict=True)])
        b = bleu.corpus_score(hyps, [refs]).score
        sc = np.mean([s for _, _, s in o if s is not None])
        gshare = np.mean([m.endswith("generative") for _, m, _ in o])
        chars = np.mean([len(t) for t in hyps])
        c = coco_scores(hyps, refs)
        print(
            f"| {mode} | {rl:.4f} | {b:.2f} | {c['bleu4']:.4f} | {c['cider']:.4f} | {sc:.4f} | {gshare:.0%} | "
            f"{chars:.0f} |"
        )
    for name, g in (("base", gen), ("adapter", agen)):
        if g is None:
            continue
        n_calls = len(g.memo) - (1 if g is gen else 0)
        if n_calls > 0:
            print(
                f"\nspeed ({name}): {g.seconds / n_calls:.1f} s per generated caption ({n_calls} generator calls, "
                f"{ccfg.candidates} beams, max {ccfg.max_new_tokens} new tokens, CPU, model load excluded)"
            )
    print(f"per-post outputs: {args.out}")


if __name__ == "__main__":
    main()
