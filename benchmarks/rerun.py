"""A full `photopoet run` twice on one folder with one fresh cache: first run against the rerun.

Each run is a separate process (as a user would start it), so model loading and imports are counted.

    .venv/bin/python benchmarks/rerun.py [PHOTOS]      # default: ../shared/club/images
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(photos: Path, out: Path, config: Path) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "photopoet", "run", str(photos), "--out", str(out), "--config", str(config), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "photos", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club/images"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        # a fresh cache for the photos; the models' own converted files stay in the user cache dir
        cfg.write_text(f"cache:\n  dir: {Path(tmp) / 'cache'}\n", encoding="utf-8")
        out = Path(tmp) / "out"
        first = timed_run(args.photos, out, cfg)
        second = timed_run(args.photos, out, cfg)
        doc = json.loads((out / "posts.json").read_text(encoding="utf-8"))
    n_files = len(doc["photos"]) + len(doc["excluded"])
    print("| folder | files | photos | posts | first run s | rerun s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.photos.name} | {n_files} | {len(doc['photos'])} | {len(doc['posts'])} | {first:.1f} | "
        f"{second:.1f} | {first / second:.1f}x |"
    )


if __name__ == "__main__":
    main()
