"""PNG plots for the report (matplotlib, Agg backend), returned as data URIs so the report stays one file."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def silhouette_plot(curves: Sequence[dict]) -> str | None:
    """Silhouette against k for every stretch that was clustered; the chosen k marked."""
    curves = [c for c in curves if c.get("k")]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for n, c in enumerate(curves):
        (line,) = ax.plot(c["k"], c["silhouette"], marker=".", lw=1, label=f"{c['n']} photos" if n < 8 else None)
        if c["chosen"] in c["k"]:
            ax.plot(
                [c["chosen"]], [c["silhouette"][c["k"].index(c["chosen"])]], "o", ms=9, mfc="none", c=line.get_color()
            )
    ax.set_xlabel("k (posts)")
    ax.set_ylabel("silhouette")
    ax.set_title("Choosing k: silhouette per number of posts (circle: chosen)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _uri(fig)


def label_score_plot(names: Sequence[str], scores: np.ndarray | None, threshold: float) -> str | None:
    """Distribution of each label's calibrated score over the photos, with the threshold."""
    if scores is None or not len(names) or not len(scores):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    ax.boxplot([scores[:, j] for j in range(len(names))], orientation="horizontal", tick_labels=list(names), widths=0.6)
    ax.axvline(threshold, color="#c13584", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("calibrated score (z against background concepts)")
    ax.set_title("Label scores over the photos")
    ax.legend(fontsize=8, loc="lower right")
    return _uri(fig)


def report_plots(curves: Sequence[dict], names: Sequence[str], scores: np.ndarray | None, threshold: float) -> list:
    out = []
    for title, uri in (
        ("Choosing the number of posts", silhouette_plot(curves)),
        ("Label scores", label_score_plot(names, scores, threshold)),
    ):
        if uri:
            out.append({"title": title, "uri": uri})
    return out
