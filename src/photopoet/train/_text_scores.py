"""TEMPORARY stand-in for ``photopoet.metrics`` text metrics (issue 7 item 1, written on another branch).

The style trainer calls :func:`text_scores` only; once the metrics branch is merged this module is deleted and
:func:`text_scores` calls ``photopoet.metrics`` instead. Same definitions as pycocoevalcap on lower-cased,
whitespace-split tokens: corpus BLEU-n (clipped n-gram precisions, geometric mean, brevity penalty on the
closest reference length) and ROUGE-L (LCS F-measure, beta 1.2, best reference per hypothesis).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence


def _tok(s: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", s.lower()).split()


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def text_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict[str, float]:
    """{"bleu1", "bleu2", "bleu4", "rougeL"} in [0, 1] for hypotheses against their reference lists."""
    match, total = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    rouge = []
    for h, rs in zip(hyps, refs, strict=True):
        ht, rts = _tok(h), [_tok(r) for r in rs]
        hyp_len += len(ht)
        ref_len += min((abs(len(r) - len(ht)), len(r)) for r in rts)[1] if rts else 0
        for n in range(1, 5):
            hc = Counter(tuple(ht[i : i + n]) for i in range(len(ht) - n + 1))
            best: Counter = Counter()
            for r in rts:
                best |= Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            match[n - 1] += sum(min(c, best[g]) for g, c in hc.items())
            total[n - 1] += max(len(ht) - n + 1, 0)
        scores = []
        for r in rts:
            lcs = _lcs(ht, r)
            if lcs == 0:
                scores.append(0.0)
                continue
            p, rec = lcs / len(ht), lcs / len(r)
            scores.append(((1 + 1.2**2) * p * rec) / (rec + 1.2**2 * p))
        rouge.append(max(scores) if scores else 0.0)
    out: dict[str, float] = {}
    tiny, logsum = 1e-9, 0.0
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    for n in range(1, 5):
        logsum += math.log((match[n - 1] + tiny) / (total[n - 1] + tiny * 10**0))
        if n in (1, 2, 4):
            out[f"bleu{n}"] = bp * math.exp(logsum / n) if hyp_len else 0.0
    out["rougeL"] = sum(rouge) / len(rouge) if rouge else 0.0
    return out
