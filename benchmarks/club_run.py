"""The whole `photopoet run` on the club's photos, stage by stage: the default run beside the template-only one.

Each run is `photopoet.pipeline.run` in a process of its own with an empty cache in a temporary folder (so the
photos are decoded, embedded and written from scratch; model files such as the assembled GGUF are made there too):

- ``template``: no generation at all (``caption.mode: template``, ``haiku.enabled: false``,
  ``poem.fallback: best``), the baseline the issue measures against;
- ``default``: the shipped defaults (hybrid captions, a haiku per post, poems generated below the threshold),
  on the default engine (llama.cpp);
- ``transformers`` (only with ``--runs ...,transformers``): the defaults on the transformers engine, what a
  run did before llama.cpp; slow (about 40 minutes here).

The table gives seconds per stage (understand = decoding is in ingest; features, labels and faces here), the
whole run, seconds per post for each writer, the generator's load time and decoding rate (tokens generated /
seconds inside generate), and the process's peak RSS; then the ratio of each run to the template-only run.
The load average is printed before and after: on a shared machine it says how much CPU was free.

    .venv/bin/python benchmarks/club_run.py [--photos ../shared/club/images] [--runs template,default] [--threads N]

``--threads N`` fixes the generator's threads (``models.threads``) instead of taking them from the free cores.
Other work on the machine slows every stage (and ``nice`` does not shield a run from jobs of other sessions where
the kernel's autogroups are on): compare figures only from runs whose load averages before and after are low.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "template": {"caption": {"mode": "template"}, "haiku": {"enabled": False}, "poem": {"fallback": "best"}},
    "default": {},
    "transformers": {"models": {"engine": "transformers"}},
}
STAGES = ("ingest", "understand", "cull", "group", "captions", "haiku", "poems", "render")


def child(photos: Path, work: Path, name: str, result: Path, threads: int = 0) -> None:
    """One run, in this process; its figures into ``result`` as JSON."""
    from photopoet.config import load_config
    from photopoet.pipeline import run

    over = json.loads(json.dumps(RUNS[name]))
    over.setdefault("cache", {})["dir"] = str(work / f"cache-{name}")
    if threads:
        over.setdefault("models", {})["threads"] = threads
    cfg = load_config(overrides=over)
    t = time.perf_counter()
    res = run(photos, work / f"out-{name}", cfg, progress=False)
    wall = time.perf_counter() - t
    stats = getattr(res.generator, "stats", None)
    row = {
        "run": name,
        "wall_s": wall,
        "timings": res.timings,
        "posts": len(res.posts),
        "photos": len(res.photos),
        "generated_poems": sum(1 for p in res.posts if p.poem and p.poem.get("generated")),
        "caption_modes": sorted({p.caption_mode for p in res.posts}),
        "engine": getattr(res.generator, "engine", None),
        "load_s": getattr(stats, "load_s", None),
        "new_tokens": getattr(stats, "new_tokens", None),
        "decode_s": getattr(stats, "decode_s", None),
        "prompt_tokens": getattr(stats, "prompt_tokens", None),
        "reused_tokens": getattr(stats, "reused_tokens", None),
    }
    result.write_text(json.dumps(row))


def run_one(photos: Path, work: Path, name: str, threads: int = 0) -> dict:
    result = work / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--photos", str(photos), "--work", str(work)]
    cmd += ["--threads", str(threads)]
    log = work / f"{name}.log"
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} run failed ({log}):\n{log.read_text(errors='replace')[-3000:]}")
    row = json.loads(result.read_text())
    row.update(
        process_s=wall, peak_rss_mb=usage.ru_maxrss / 1024, load_before=load_before, load_after=os.getloadavg()[0]
    )
    return row


def fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=HERE.parent / "../shared/club/images")
    ap.add_argument("--runs", default="template,default", help="comma-separated: template, default, transformers")
    ap.add_argument("--keep", type=Path, help="work here (kept) instead of a temporary folder")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--threads", type=int, default=0, help="generator threads (models.threads; 0: from the free cores)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.photos, args.work, args.child, args.work / f"{args.child}.json", args.threads)
        return
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    bad = [n for n in names if n not in RUNS]
    if bad:
        raise SystemExit(f"--runs: unknown {bad}; known: {', '.join(RUNS)}")
    print(
        f"load average before: {os.getloadavg()[0]:.1f} (1 min), cores: {os.cpu_count()}, "
        f"nice: {os.nice(0)}, generator threads: {args.threads or 'from the free cores'}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="club-run-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in names:
            rows.append(run_one(args.photos.resolve(), work, n, args.threads))
            print(f"{n}: {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print("| run | " + " | ".join(STAGES) + " | whole run s | posts | x template |")
    print("|---" * (len(STAGES) + 4) + "|")
    base = next((r["wall_s"] for r in rows if r["run"] == "template"), None)
    for r in rows:
        cells = [fmt(r["timings"].get(s)) for s in STAGES]
        ratio = fmt(r["wall_s"] / base, 2) if base else "-"
        print(f"| {r['run']} | " + " | ".join(cells) + f" | {r['wall_s']:.1f} | {r['posts']} | {ratio} |")
    print()
    print("| run | engine | s/post captions | s/post haiku | s/post poems | poems generated | model load s "
          "| tokens | tokens/s | prompt tokens (reused) | peak RSS MB | load avg before/after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n = max(1, r["posts"])
        t = r["timings"]
        tps = r["new_tokens"] / r["decode_s"] if r.get("decode_s") else None
        prompt = f"{r['prompt_tokens']} ({r['reused_tokens']})" if r.get("prompt_tokens") is not None else "-"
        print(
            f"| {r['run']} | {r['engine'] or '-'} | {fmt(t.get('captions', 0) / n, 2)} "
            f"| {fmt(t.get('haiku', 0) / n, 2)} "
            f"| {fmt(t.get('poems', 0) / n, 2)} | {r['generated_poems']} | {fmt(r['load_s'], 2)} "
            f"| {r['new_tokens'] if r['new_tokens'] is not None else '-'} | {fmt(tps, 0)} | {prompt} "
            f"| {r['peak_rss_mb']:.0f} | {r['load_before']:.1f} / {r['load_after']:.1f} |"
        )


if __name__ == "__main__":
    main()
