"""The generator engines side by side: load time and decoding speed of Gemma 3 270M on transformers and llama.cpp.

One workload, the haiku step of a run: 8 posts' haiku prompts (the few-shot prompt of
:func:`photopoet.stages.write.haiku.haiku_prompt`), 4 sampled candidates each (T=0.8), at most 24 new tokens,
stopping at a blank line. Rows:

- transformers (the engine before llama.cpp): one post per call, as a run used it;
- llama.cpp with 1 and 2 threads and with threads from the free cores (``models.threads: 0``, the default),
  one post per call and 8 posts per call (what ``photopoet run`` does);
- the same llama.cpp rows again while another process keeps one core busy (a busy machine).

tokens/s counts generated tokens over the seconds inside ``generate``. The 1-minute load average is printed
with each row.

    .venv/bin/python benchmarks/write_engine.py [--no-transformers]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

from photopoet.config import load_config
from photopoet.models.llama_engine import free_cores
from photopoet.stages.write.haiku import HAIKU_STOP, haiku_prompt

SUBJECTS = [
    "students on a lit stage at night",
    "a poster for a photography workshop",
    "a group photo on the campus lawn",
    "a temple in the mountains",
    "a plate of street food",
    "a guitarist in a crowd",
    "sunset over a lake",
    "a quiz team holding a trophy",
]


def spin(stop) -> None:  # a busy core
    while not stop.is_set():
        sum(range(10000))


def workload(gen, per_call: int) -> tuple[float, int]:
    prompts = [haiku_prompt(s) for s in SUBJECTS]
    before = getattr(getattr(gen, "stats", None), "new_tokens", None)
    t = time.perf_counter()
    outs = []
    for i in range(0, len(prompts), per_call):
        outs += gen.generate(
            prompts[i : i + per_call],
            max_new_tokens=24,
            temperature=0.8,
            num_return_sequences=4,
            seed=0,
            **({"stop": HAIKU_STOP} if before is not None else {}),
        )
    dt = time.perf_counter() - t
    if before is not None:
        tokens = gen.stats.new_tokens - before
    else:  # transformers, called as before llama.cpp (no stop strings: it decodes to the limit or <eos> anyway)
        tokens = sum(len(gen._tok(o, add_special_tokens=False)["input_ids"]) for row in outs for o in row)
    return dt, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers row (a minute to load)")
    args = ap.parse_args()
    cfg = load_config()
    cache_dir = cfg.cache.resolved_dir()
    from photopoet.models.offline import Gemma3Generator, Gemma3LlamaGenerator

    rows = []
    if not args.no_transformers:
        tf = Gemma3Generator(cache_dir)
        t = time.perf_counter()
        tf.generate(["Hello"], max_new_tokens=1)
        load = time.perf_counter() - t
        dt, tok = workload(tf, 1)
        rows.append(("transformers (float32)", "torch's", 1, load, dt, tok, os.getloadavg()[0]))
        del tf
    for busy in (False, True):
        stop = mp.Event()
        spinner = None
        if busy:
            spinner = mp.Process(target=spin, args=(stop,), daemon=True)
            spinner.start()
            time.sleep(20)  # let the load average see it
        try:
            for threads in (1, 2, 0):
                g = Gemma3LlamaGenerator(cache_dir, threads=threads)
                t = time.perf_counter()
                g.load()
                load = time.perf_counter() - t
                g.generate(["Hello"], max_new_tokens=1)
                label = f"{threads}" if threads else f"auto ({free_cores()})"
                for per_call in (1, 8):
                    dt, tok = workload(g, per_call)
                    name = "llama.cpp" + (", one core busy" if busy else "")
                    rows.append((name, label, per_call, load, dt, tok, os.getloadavg()[0]))
                g.close()
        finally:
            stop.set()
            if spinner is not None:
                spinner.join()
    print(f"\n{len(SUBJECTS)} haiku prompts x 4 candidates, <= 24 new tokens, {os.cpu_count()} cores\n")
    print("| engine | threads | posts per call | load s | seconds | tokens | tokens/s | s per post | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, threads, per_call, load, dt, tok, la in rows:
        print(
            f"| {name} | {threads} | {per_call} | {load:.2f} | {dt:.1f} | {tok} | {tok / dt:.0f} | "
            f"{dt / len(SUBJECTS):.2f} | {la:.1f} |"
        )


if __name__ == "__main__":
    main()
