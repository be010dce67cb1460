"""Scale: per-photo throughput of ingest + quality + features, local vs Ray, peak memory, and what 1M / 10M cost.

Synthetic JPEGs are made by this script (seeded): 1024 x 768 scenes of gradients, shapes and noise, no two
alike, with 3% planted near-duplicates (a resized and recompressed copy of another photo of the set).

Per size, in a fresh process each (so peak RSS is that run's alone), with a fresh cache:

* ``local``: the pipeline's own stages on one process: ``ingest`` (hash, decode, working copy), ``understand``
  (image features, text-space vectors, concepts, appearance; label scores) and the cull stage's per-photo
  signals: everything the ``ray`` executor computes per photo;
* ``ray``: ``photopoet.executors.ray_runner.precompute`` on a local Ray runtime (``num_cpus`` = this machine's
  cores): Ray Data ``map_batches`` over the files, one actor per ``cpus_per_worker`` CPUs, shards written,
  then imported into the cache; Ray's start-up is timed separately.

Peak RSS: the driver's (``ru_maxrss``) and, for Ray, the largest worker's (``VmHWM`` of each ``MapWorker``
process, sampled every 0.5 s) and the sum over workers.

The near-duplicate search at 100k (and more) photos runs on vectors, not pixels (``--dedupe``): planted
near-duplicate vectors as in ``benchmarks/dedupe_scale.py``, exact vs IVF vs the partitioned (SemDeDup-style)
search, recall of the planted pairs.

    .venv/bin/python benchmarks/scale.py [--sizes 1000 10000] [--modes local ray] [--dedupe 100000]
        [--cores-per-node 32] [--core-hour-usd 0.04]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_photos(dest: Path, n: int, seed: int = 0, dup_share: float = 0.03) -> int:
    """`n` JPEGs under `dest` (100 a folder); returns how many are planted near-duplicates."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = 1024, 768
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    n_dup = int(n * dup_share)
    originals = n - n_dup
    made: list[Path] = []
    for i in range(originals):
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ang = rng.uniform(0, 2 * np.pi)
        t = ((xx * np.cos(ang) + yy * np.sin(ang)) / (w + h) + 0.5).clip(0, 1)[..., None]
        base = (c0 * (1 - t) + c1 * t).astype(np.uint8)
        im = Image.fromarray(base)
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(4, 14))):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            x1, y1 = x0 + int(rng.integers(30, 400)), y0 + int(rng.integers(30, 300))
            col = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = int(rng.integers(0, 3))
            if shape == 0:
                d.rectangle((x0, y0, x1, y1), fill=col)
            elif shape == 1:
                d.ellipse((x0, y0, x1, y1), fill=col)
            else:
                d.line((x0, y0, x1, y1), fill=col, width=int(rng.integers(2, 20)))
        noise = rng.normal(0, rng.uniform(2, 12), (h // 4, w // 4, 3)).astype(np.float32)
        noisy = np.asarray(im, np.float32) + np.kron(noise, np.ones((4, 4, 1), np.float32))
        im = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
        if rng.random() < 0.2:
            im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
        p = dest / f"{i // 100:04d}" / f"img-{i:06d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        im.save(p, quality=int(rng.integers(80, 95)))
        made.append(p)
    for k in range(n_dup):
        src = made[int(rng.integers(0, len(made)))]
        im = Image.open(src)
        s = float(rng.uniform(0.5, 0.9))
        im = im.resize((int(w * s), int(h * s)))
        j = originals + k
        p = dest / f"{j // 100:04d}" / f"img-{j:06d}-dup.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        im.save(p, quality=70)
    return n_dup


class WorkerPeak:
    """Samples VmHWM (peak RSS) of every Ray MapWorker process while alive."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"MapWorker" not in cmd:
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            mb = int(line.split()[1]) / 1024
                            self.peaks[int(pid)] = max(self.peaks.get(int(pid), 0.0), mb)
                except OSError:
                    continue
            self._stop.wait(0.5)

    def __enter__(self) -> WorkerPeak:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def child(mode: str, photos: Path, work: Path) -> dict:
    from photopoet.config import load_config
    from photopoet.core.cache import Cache
    from photopoet.stages.cull import _signals
    from photopoet.stages.ingest import ingest
    from photopoet.stages.understand import ModelSet, understand

    cores = os.cpu_count() or 1
    cfg = load_config(
        None,
        {
            "cache": {"dir": str(work / "cache")},
            "executor": {"kind": mode, "shard_dir": str(work / "shards"), "num_cpus": cores, "cpus_per_worker": 1},
        },
    )
    (work / "cache").mkdir(parents=True, exist_ok=True)
    cache = Cache(work / "cache" / "cache.sqlite3")
    models = ModelSet(cfg, work / "cache")
    # the ConSE class matrix and the label vectors are made once per cache in both modes: not per-photo work
    models.mapper.class_matrix()
    out: dict = {"mode": mode, "cores": cores}
    peak = WorkerPeak()
    if mode == "ray":
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, object_store_memory=1 << 30, log_to_driver=False)
        out["startup_s"] = time.perf_counter() - t
        from photopoet.executors.ray_runner import precompute

        with peak:
            t = time.perf_counter()
            stats = precompute(photos, work, cfg, cache, work / "cache", progress=False)
            out["work_s"] = time.perf_counter() - t
        out["computed"] = stats.computed
        ray.shutdown()
    else:
        t = time.perf_counter()
        ing = ingest(photos, cfg.ingest, cache, progress=False)
        und = understand(ing.photos, cfg, cache, models, progress=False)
        _signals(und.photos, cache, cfg.cull, progress=False)
        out["work_s"] = time.perf_counter() - t
        out["computed"] = ing.decoded
    cache.close()
    out["driver_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["worker_peak_mb"] = max(peak.peaks.values(), default=0.0)
    out["workers_sum_mb"] = sum(peak.peaks.values())
    out["workers"] = len(peak.peaks)
    return out


def dedupe_child(n: int, dim: int, method: str) -> dict:
    sys.path.insert(0, str(HERE))
    from dedupe_scale import make_vectors

    from photopoet.config import CullConfig
    from photopoet.stages.cull import knn_pairs, partitioned_pairs

    cfg = CullConfig()
    x, groups = make_vectors(n, dim)
    t = time.perf_counter()
    if method == "partitioned":
        pairs = partitioned_pairs(x, cfg.neighbors, cfg.candidate_cosine, partition_size=cfg.partition_size)
    else:
        pairs = knn_pairs(x, cfg.neighbors, cfg.candidate_cosine, approximate=method == "ivf")
    secs = time.perf_counter() - t
    found = {(i, j) for i, j, _ in pairs}
    planted = [(min(a, b), max(a, b)) for g in groups for k, a in enumerate(g) for b in g[k + 1 :]]
    return {
        "n": n,
        "dim": dim,
        "method": method,
        "seconds": secs,
        "recall": sum(p in found for p in planted) / len(planted),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _sub(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--modes", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--dedupe", type=int, nargs="*", default=[100000], help="vector counts for the dedupe table")
    ap.add_argument("--dedupe-methods", nargs="+", default=["exact", "ivf", "partitioned"])
    ap.add_argument("--cores-per-node", type=int, default=32, help="projection: cores of one cluster node")
    ap.add_argument("--core-hour-usd", type=float, default=0.04, help="projection: price of one core-hour")
    ap.add_argument("--keep", type=Path, help="keep the synthetic photos here (reused when present)")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "PHOTOS", "WORK"), help=argparse.SUPPRESS)
    ap.add_argument("--dedupe-child", nargs=3, metavar=("N", "DIM", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]))))
        return
    if args.dedupe_child:
        n, dim, method = args.dedupe_child
        print(json.dumps(dedupe_child(int(n), int(dim), method)))
        return

    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min), cores: {os.cpu_count()}", file=sys.stderr)
    rows = []
    for n in args.sizes:
        base = args.keep or Path(tempfile.mkdtemp(prefix="photopoet-scale-"))
        photos = base / f"photos-{n}"
        if not photos.is_dir():
            t = time.perf_counter()
            make_photos(photos, n)
            print(f"made {n} photos in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        for mode in args.modes:
            with tempfile.TemporaryDirectory(prefix=f"scale-{mode}-") as work:
                r = _sub(["--child", mode, str(photos), work])
            r["n"] = n
            r["load"] = os.getloadavg()[0]
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)

    if rows:
        print(
            "| photos | executor | start-up s | ingest + quality + features s | photos/s | per photo, core-s "
            "| driver peak RSS MB | worker peak RSS MB (sum) | load after |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            rate = r["n"] / r["work_s"]
            core_s = r["work_s"] * r["cores"] / r["n"]
            workers = (
                f"{r['worker_peak_mb']:.0f} ({r['workers_sum_mb']:.0f}, {r['workers']} actors)" if r["workers"] else "-"
            )
            print(
                f"| {r['n']:,} | {r['mode']} | {r.get('startup_s', 0):.1f} | {r['work_s']:.1f} | {rate:.1f} | "
                f"{core_s:.3f} | {r['driver_rss_mb']:.0f} | {workers} | {r['load']:.1f} |"
            )
        best = {}
        for r in rows:
            best.setdefault(r["mode"], []).append(r["work_s"] * r["cores"] / r["n"])
        print()
        print(
            f"Projection (per photo core-seconds as measured above, the largest size of each executor; nodes of "
            f"{args.cores_per_node} cores at {args.core_hour_usd:.2f} USD a core-hour, perfect scaling of the "
            "per-photo work assumed):"
        )
        print()
        print(
            "| executor | photos | core-hours | hours on 1 node | hours on 10 nodes | hours on 100 nodes | cost USD |"
        )
        print("|---|---|---|---|---|---|---|")
        for mode, vals in best.items():
            per = vals[-1]
            for total in (1_000_000, 10_000_000):
                ch = per * total / 3600
                hrs = [ch / (args.cores_per_node * k) for k in (1, 10, 100)]
                print(
                    f"| {mode} | {total:,} | {ch:,.0f} | {hrs[0]:,.1f} | {hrs[1]:,.2f} | {hrs[2]:,.3f} | "
                    f"{ch * args.core_hour_usd:,.0f} |"
                )

    drows = []
    for n in args.dedupe:
        for method in args.dedupe_methods:
            r = _sub(["--dedupe-child", str(n), "1280", method])
            r["load"] = os.getloadavg()[0]
            drows.append(r)
            print(json.dumps(r), file=sys.stderr)
    if drows:
        print()
        print("| vectors | dim | search | seconds | planted pairs found | peak RSS MB | load after |")
        print("|---|---|---|---|---|---|---|")
        for r in drows:
            print(
                f"| {r['n']:,} | {r['dim']} | {r['method']} | {r['seconds']:.1f} | {r['recall']:.3f} | "
                f"{r['peak_rss_mb']:.0f} | {r['load']:.1f} |"
            )


if __name__ == "__main__":
    main()
