"""Writing the reviewed posts out: :func:`export_review` runs the render stage (``stages.render.render``, the
same function ``pipeline.run`` ends with: post folders, posts.json, report.html) on the posts as the editor
left them, after restoring any working copy the report needs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from photopoet.config import Config
from photopoet.errors import JobFailed
from photopoet.records import Excluded
from photopoet.web import state as st
from photopoet.web.jobs import Job


def export_review(store: st.ReviewStore, out: Path, cfg: Config, job: Job | None = None) -> dict[str, Any]:
    """Write the reviewed posts with the render stage's own functions: OUT/posts/<id>/, posts.json, report.html.

    Posts left with no photos are not exported. Photos excluded by the editor appear in the report's set-aside
    list with the reason "excluded in review"."""
    from photopoet.core.cache import Cache, open_cache
    from photopoet.stages.ingest import decode_photo
    from photopoet.stages.render import render

    doc = store.load()
    if doc is None:
        raise JobFailed("there is no review to export")
    posts = [st.post_record(p, doc["photos"]) for p in doc["posts"] if p["photos"]]
    by_path = {path: st.understood_of(e) for path, e in doc["photos"].items()}
    missing_files = [p for post in posts for p in post.photos if not Path(p).is_file()]
    if missing_files:
        raise JobFailed(f"{missing_files[0]}: the photo is gone from its folder; move it out of its post to export")
    excluded_by_editor = [x for p in doc["posts"] for x in p["excluded"]]
    aside = [by_path[x] for x in doc["aside"]]
    aside += [replace(by_path[x], verdict="excluded", reason="excluded in review") for x in excluded_by_editor]
    excluded = [Excluded(e["path"], e["reason"]) for e in doc.get("excluded_files", [])]
    cache, _ = open_cache(cfg)
    with cache:
        assert isinstance(cache, Cache)
        needed = sorted({by_path[p].photo.sha256: p for post in posts for p in post.photos}.items())
        needed += sorted({u.photo.sha256: u.photo.path for u in aside}.items())
        have = set(cache.get_metas([sha for sha, _ in needed]))
        for sha, path in needed:  # working copies the report needs (a cleared or in-memory cache)
            if sha not in have and Path(path).is_file():
                meta, thumb = decode_photo(path, cfg.ingest.thumb_size, cfg.ingest.max_pixels)
                cache.put_photo(sha, meta, thumb)
                have.add(sha)
        aside = [u for u in aside if u.photo.sha256 in have]
        if job is not None:
            job.stage = "export"
        render(
            posts,
            cfg.render,
            cache,
            out=out,
            photos=list(by_path.values()),
            excluded=excluded,
            title=doc.get("event") or out.resolve().name,
            set_aside=aside,
            plots=doc.get("plots", []),
            progress=True,
        )
    sha = st.file_sha256(out / "posts.json")
    result = {
        "at": st._now(),
        "posts": len(posts),
        "photos": sum(len(p.photos) for p in posts),
        "revision": int(doc["revision"]) + 1,
    }

    def mark(d: dict[str, Any]) -> None:
        d["source_sha256"] = sha
        d["exported"] = result

    store.change(mark)
    return result
