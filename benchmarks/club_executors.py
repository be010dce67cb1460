"""`photopoet run` on the club's photos with the local and the Ray executor: the same posts.json, and what each costs.

Each executor runs `photopoet run PHOTOS --out OUT --config C.yaml [--executor ray]` in a process of its own, with
a fresh cache (and for Ray fresh shards) in a temporary folder, and settings that keep text generation out of the
timing: ``caption.mode: template``, ``haiku.enabled: false``, ``poem.fallback: best`` (captions, hashtags and poems
are still written). The Ray runtime is started on this machine by the command itself (``num_cpus`` = the cores,
one actor of ``executor.cpus_per_worker`` = 2 CPUs). Peak RSS is the driver's (``os.wait4``), not Ray's workers'.

The table gives each run's wall time, the part the command says ran on Ray, the driver's peak RSS, the counts in
posts.json, and whether posts.json is byte-identical to the local run's.

    .venv/bin/python benchmarks/club_executors.py [--photos ../shared/club/images] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = "caption: {mode: template}\nhaiku: {enabled: false}\npoem: {fallback: best}\n"


def run_one(photos: Path, work: Path, executor: str) -> dict:
    conf = work / f"{executor}.yaml"
    text = SETTINGS + f"cache: {{dir: {work / ('cache-' + executor)}}}\n"
    if executor == "ray":
        text += f"executor: {{shard_dir: {work / 'shards'}}}\n"
    conf.write_text(text, encoding="utf-8")
    out = work / f"out-{executor}"
    cmd = [str(Path(sys.executable).parent / "photopoet"), "run", str(photos), "--out", str(out), "--config", str(conf)]
    cmd += ["--quiet"] + (["--executor", "ray"] if executor == "ray" else [])
    log = work / f"{executor}.log"
    t = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    text = log.read_text(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{executor} run failed ({log}):\n{text[-2000:]}")
    on_ray = re.search(r"^ray: .* in ([0-9.]+) s$", text, re.MULTILINE)
    posts = json.loads((out / "posts.json").read_text(encoding="utf-8"))
    verdicts = Counter(p["verdict"] for p in posts["photos"])
    return {
        "executor": executor,
        "wall_s": wall,
        "ray_s": float(on_ray.group(1)) if on_ray else None,
        "driver_rss_mb": usage.ru_maxrss / 1024,
        "photos": len(posts["photos"]),
        "set_aside": len(posts["photos"]) - verdicts.get("keep", 0),
        "posts": len(posts["posts"]),
        "excluded": len(posts["excluded"]),
        "posts_json": (out / "posts.json").read_bytes(),
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=HERE.parent / "../shared/club/images")
    ap.add_argument("--keep", type=Path, help="work here (kept) instead of a temporary folder")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min), cores: {os.cpu_count()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="club-executors-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [run_one(args.photos.resolve(), work, ex) for ex in ("local", "ray")]
    ref = rows[0]["posts_json"]
    print("| executor | wall time s | on Ray s | driver peak RSS MB | photos | set aside | posts | excluded "
          "| posts.json | load after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        same = "reference" if r is rows[0] else ("byte-identical" if r["posts_json"] == ref else "DIFFERENT")
        ray_s = f"{r['ray_s']:.1f}" if r["ray_s"] is not None else "-"
        print(
            f"| {r['executor']} | {r['wall_s']:.1f} | {ray_s} | {r['driver_rss_mb']:.0f} | {r['photos']} | "
            f"{r['set_aside']} | {r['posts']} | {r['excluded']} | {same} | {r['load_after']:.1f} |"
        )
    if rows[1]["posts_json"] != ref:
        raise SystemExit("posts.json differs between the executors")


if __name__ == "__main__":
    main()
