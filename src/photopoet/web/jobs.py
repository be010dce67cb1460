"""One background job at a time (a pipeline run, a regeneration, an export) and what it is doing now.

Progress: the stage the pipeline announces (``pipeline.run(on_stage=...)``) and the counts of the progress bars
the stages draw with tqdm (read from tqdm's list of live bars, so the stages need no second progress API).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from photopoet.errors import JobFailed

logger = logging.getLogger(__name__)

STAGES = ["ingest", "understand", "cull", "group", "write", "render"]
STAGE_NAMES = {
    "ingest": "Reading photos",
    "understand": "Looking at them (features, labels)",
    "cull": "Setting aside duplicates and weak shots",
    "group": "Grouping into posts",
    "write": "Writing captions, haiku and poems",
    "render": "Writing post folders and the report",
}


@dataclass
class Job:
    kind: str  # run | regenerate | export
    title: str  # what the editor is told, e.g. "Writing a new caption for post 3"
    post: str | None = None
    started: float = field(default_factory=time.time)
    stage: str | None = None
    done: bool = False
    error: str | None = None
    result: Any = None
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "post": self.post,
            "stage": self.stage,
            "stage_name": STAGE_NAMES.get(self.stage or "", self.stage),
            "stages": STAGES if self.kind == "run" else [],
            "elapsed_s": round((self.finished or time.time()) - self.started, 1),
            "done": self.done,
            "error": self.error,
            "bars": [] if self.done else live_bars(),
        }


def live_bars() -> list[dict[str, Any]]:
    """The progress bars drawn right now: ``[{"desc", "n", "total"}]``."""
    out = []
    try:
        with tqdm.get_lock():  # the registry changes as bars open and close in the job's thread
            bars = list(tqdm._instances)  # tqdm's own registry of live bars
    except Exception:  # pragma: no cover - a tqdm without the registry: stages only
        return out
    for b in bars:
        if getattr(b, "disable", False):
            continue
        out.append({"desc": str(getattr(b, "desc", "") or ""), "n": int(b.n), "total": b.total})
    return out


class JobRunner:
    """Runs one job at a time in a daemon thread; `current` is the running job or the last one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: Job | None = None
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None and not self.current.done

    def start(self, job: Job, fn: Callable[[Job], Any]) -> Job:
        with self._lock:
            if self.busy:
                assert self.current is not None
                raise JobFailed(f"busy: {self.current.title}. Wait until it is done, then try again.")
            self.current = job

        def work() -> None:
            try:
                job.result = fn(job)
            except JobFailed as e:
                job.error = str(e)
            except Exception as e:  # shown as a message; the traceback goes only to the server's log
                logger.exception("%s failed", job.title)
                job.error = f"{job.title} failed: {type(e).__name__}: {e}"
            finally:
                job.finished = time.time()
                job.done = True

        self._thread = threading.Thread(target=work, name=f"photopoet-{job.kind}", daemon=True)
        self._thread.start()
        return job

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)
