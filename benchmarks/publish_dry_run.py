"""Check `photopoet publish --dry-run --json` on a run's output: is every planned post a valid Instagram post?

    .venv/bin/python benchmarks/publish_dry_run.py OUT [--config FILE]

Runs the real command, then checks each post independently of the publisher's own checks: 1 photo is one IMAGE
container with the caption; 2-10 photos are one is_carousel_item container per photo (in the folder's order,
at the configured public URLs) and one CAROUSEL container whose children are those items and which carries the
caption; a publish of that container last; the files are JPEGs of at most 8 MB, 4:5 to 1.91:1; the caption is
caption.txt, at most 2,200 characters and 30 hashtags. Prints a table by post size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from PIL import Image

from photopoet.instagram import hashtags_in


def check(post: dict, out: Path) -> list[str]:
    problems = []
    n, reqs = len(post["media"]), post["requests"]
    posts_ = [r for r in reqs if r["method"] == "POST"]
    if not 1 <= n <= 10:
        problems.append(f"{n} items")
    if len(post["caption"]) > 2200 or len(hashtags_in(post["caption"])) > 30:
        problems.append("caption over the limits")
    folder = out / "posts" / post["id"]
    if post["caption"] != (folder / "caption.txt").read_text(encoding="utf-8").strip():
        problems.append("caption is not caption.txt")
    for url in post["media"]:
        f = folder / url.rsplit("/", 1)[1]
        with Image.open(f) as im:
            w, h = im.size
            if im.format != "JPEG" or f.stat().st_size > 8 * 2**20 or not (0.8 * h - 1 <= w <= 1.91 * h + 1):
                problems.append(f"{f.name}: {im.format} {w}x{h}")
    if n == 1:
        (create, publish) = posts_ if len(posts_) == 2 else (None, None)
        if not create or create["json"] != {"image_url": post["media"][0], "caption": post["caption"]}:
            problems.append("single photo: not one IMAGE container with the caption")
    else:
        items = [r for r in posts_ if r["json"].get("is_carousel_item")]
        carousel = [r for r in posts_ if r["json"].get("media_type") == "CAROUSEL"]
        if [r["json"]["image_url"] for r in items] != post["media"]:
            problems.append("items are not the photos in order")
        if len(carousel) != 1 or len(carousel[0]["json"]["children"]) != n:
            problems.append("not one CAROUSEL container of all the items")
        elif carousel[0]["json"].get("caption") != post["caption"]:
            problems.append("carousel container lacks the caption")
        publish = posts_[-1]
    if not publish or not publish["url"].endswith("/media_publish"):
        problems.append("does not end with media_publish")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--config", type=Path)
    args = ap.parse_args()
    cmd = [str(Path(sys.executable).with_name("photopoet")), "publish", str(args.out), "--dry-run", "--json"]
    if args.config:
        cmd += ["--config", str(args.config)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode not in (0, 1):
        sys.exit(res.stderr)
    doc = json.loads(res.stdout)
    rows: Counter = Counter()
    valid: Counter = Counter()
    n_requests: dict[int, set[int]] = {}
    for post in doc["posts"]:
        n = len(post["media"])
        rows[n] += 1
        n_requests.setdefault(n, set()).add(len(post["requests"]))
        problems = check(post, args.out) if post["status"] == "ready" else [f"status {post['status']}"]
        valid[n] += not problems
        for p in problems:
            print(f"{post['id']}: {p}", file=sys.stderr)
    print(f"`photopoet publish {args.out} --dry-run --json`: {len(doc['posts'])} posts, exit code {res.returncode}\n")
    print("| photos | kind | posts | valid | requests each |")
    print("|---|---|---|---|---|")
    for n in sorted(rows):
        kind = "single image" if n == 1 else "carousel"
        each = ", ".join(str(x) for x in sorted(n_requests[n]))
        print(f"| {n} | {kind} | {rows[n]} | {valid[n]} | {each} |")
    print(f"| all | | {sum(rows.values())} | {sum(valid.values())} | |")


if __name__ == "__main__":
    main()
