"""Side by side for a person to judge: 20 club posts, their photos, what the tool saw, and the texts written
without the scene (the writers before the scene reached them) and with it.

Posts: the 17 test posts of ``caption_eval.is_test`` and 3 train posts drawn with a fixed seed from those with
a poster (so that posters are well represented); the style file holds the other train posts' captions only.
Both sides run the product's own writers (``stages.write.texts.write_texts`` in the default hybrid mode with the
club's captions as style examples, then ``stages.write.poem.write_poems``) on the same understood photos, with the
club's event for each post, as a run on a folder named after the event would have it; the "without" side gets
the posts and photos with their scenes taken away. ``caption.known_facts`` holds the club's own names
(Montage, IIT Guwahati), as its editor would set them. The club's own caption is shown beside them.

    .venv/bin/python benchmarks/side_by_side.py [--club ../shared/club] [--out docs/side_by_side.html]
        [--set cache.dir=DIR]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import tempfile
from dataclasses import replace
from pathlib import Path

from caption_eval import is_test, reference, settings
from tqdm import tqdm

from photopoet.config import load_config
from photopoet.core.files import atomic_write_text
from photopoet.pipeline import post_scenes, understand_folder
from photopoet.records import Post
from photopoet.stages.write.poem import write_poems
from photopoet.stages.write.texts import TextWriter, write_texts

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=ROOT / "../shared/club")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/side_by_side.html")
    ap.add_argument("--extra", type=int, default=3, help="train posts with a poster added to the test posts")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config setting")
    args = ap.parse_args()
    club_posts = [json.loads(x) for x in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    base = settings(args.set)
    cfg0 = load_config(overrides=base)
    _, und = understand_folder(args.club / "images", cfg0, progress=True, scenes=True)
    by_name = {Path(u.photo.path).name: u for u in und.photos}
    by_path = {u.photo.path: u for u in und.photos}

    def post_of(d: dict) -> Post:
        paths = [by_name[x].photo.path for x in d["images"] if x in by_name]
        return post_scenes([Post(d["post_id"], paths, paths[0])], by_path)[0]

    test = [d for d in club_posts if is_test(d["post_id"])]
    with_poster = [d for d in club_posts if not is_test(d["post_id"]) and (p := post_of(d)).scene and p.scene.posters]
    extra = random.Random(0).sample(with_poster, min(args.extra, len(with_poster)))
    chosen = test + extra
    chosen_ids = {d["post_id"] for d in chosen}
    style = [
        {"caption": d["caption"], "event": d.get("event"), "labels": d.get("labels", [])}
        for d in club_posts
        if not is_test(d["post_id"]) and d["post_id"] not in chosen_ids
    ]
    with tempfile.TemporaryDirectory() as tmp:
        style_file = Path(tmp) / "style.jsonl"
        style_file.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in style) + "\n", encoding="utf-8")
        # as the club's editor would configure it: its own names (never a poster's title, always allowed as facts)
        caption = {"known_facts": ["Montage", "IIT Guwahati"], **base.get("caption", {}), "style_file": str(style_file)}
        cfg = load_config(overrides={**base, "caption": caption})
        writer = TextWriter(cfg, cfg.cache.resolved_dir())
        vectors = {u.photo.path: und.text_vectors[i] for i, u in enumerate(und.photos)}
        bare_by_path = {k: replace(u, scene=None) for k, u in by_path.items()}
        bare_und = replace(und, photos=[replace(u, scene=None) for u in und.photos])
        rows = []
        for d in tqdm(chosen, desc="posts", unit="post"):
            post = post_of(d)
            labelled = write_texts(
                [post], cfg, None, writer=writer, by_path=by_path, vectors=vectors, event=d.get("event"), progress=False
            )
            old = write_texts(
                [replace(post, scene=None)],
                cfg,
                None,
                writer=writer,
                by_path=bare_by_path,
                vectors=vectors,
                event=d.get("event"),
                progress=False,
            )
            new_p = write_poems(labelled, cfg, cfg.cache.resolved_dir(), und=und, text_encoder=writer.text_encoder)[0]
            old_p = write_poems(old, cfg, cfg.cache.resolved_dir(), und=bare_und, text_encoder=writer.text_encoder)[0]
            rows.append((d, old_p, new_p))
    atomic_write_text(args.out, page(rows, args.out))
    print(f"{len(rows)} posts ({len(test)} test, {len(extra)} train with a poster): {args.out}")


def _texts(p: Post) -> str:
    e = html.escape
    haiku = "<br>".join(e(x) for x in (p.haiku or []))
    poem = p.poem or {}
    src = " · ".join(x for x in (poem.get("author", ""), poem.get("title", "")) if x)
    mood = f"<br><small>mood words: {e(', '.join(poem['mood_words']))}</small>" if poem.get("mood_words") else ""
    return (
        f"<p>{e(p.caption)}</p><p class=tags>{e(' '.join(p.hashtags))}</p>"
        f"<p class=small>{e(p.caption_mode or '')}</p><p class=haiku>{haiku}</p>"
        f"<p lang=zh>{e(poem.get('text', ''))}<br><small>{e(src)}</small>{mood}</p>"
    )


def page(rows: list, out: Path) -> str:
    e = html.escape
    parts = [
        "<!doctype html><meta charset=utf-8><title>photopoet: texts without and with the scene</title>",
        "<style>body{font:14px system-ui;margin:20px}table{border-collapse:collapse}td{border-top:1px solid #ccc;"
        "vertical-align:top;padding:8px;max-width:330px}img{height:90px;margin:2px}.tags{color:#357}.small,small"
        "{color:#777;font-size:12px}.haiku{font-style:italic}</style>",
        "<h1>Texts without and with the scene</h1><p>Written by benchmarks/side_by_side.py; photos are linked from "
        "../shared/club/images. Left: the writers without the scene; middle: with it; right: the club's own caption.",
        "</p><table><tr><th>photos</th><th>what the tool saw</th><th>without the scene</th><th>with the scene</th>"
        "<th>the club</th></tr>",
    ]
    for d, old, new in rows:
        imgs = "".join(f'<img src="{e(os.path.relpath(x, out.parent.resolve()))}" alt="">' for x in new.photos[:6])
        seen = e(new.scene.line()) if new.scene else ""
        split = "test" if is_test(d["post_id"]) else "train"
        parts.append(
            f"<tr><td>{imgs}<br><small>{e(d['post_id'])} ({split}) · event: {e(d.get('event') or '')}</small></td>"
            f"<td><small>{seen}</small></td><td>{_texts(old)}</td><td>{_texts(new)}</td>"
            f"<td>{e(reference(d['caption']))}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
