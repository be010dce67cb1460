"""Caption metrics as papers report them: BLEU-1..4, ROUGE-L and CIDEr(-D), the numbers of ``pycocoevalcap``.

Written here (plain Python; no Java, no GPL code at run time) and checked in the tests against
``pycocoevalcap`` 1.2 on the same token lists, to 1e-6. What "the same numbers" means, metric by metric:

- **BLEU-n** (``Bleu(4)``): corpus level. Clipped n-gram matches and n-gram counts are summed over the whole
  set; the brevity penalty compares the summed prediction length with the summed *closest* reference length
  (per item, the reference length nearest the prediction's, the shorter one on a tie). BLEU-n is the
  geometric mean of the first n precisions times the penalty. pycocoevalcap's tiny smoothing constants
  (1e-15 added to matches, 1e-9 to counts and lengths) are kept, so an empty set of matches gives ~0, not an
  error.
- **ROUGE-L** (``Rouge``): per item, the longest common subsequence with each reference; precision and
  recall are the best over the references (taken separately), F with beta = 1.2; the set's score is the mean
  over items. As there, an empty sentence counts as one empty token (so an empty prediction scores 0, and
  1 against an empty reference).
- **CIDEr** (``Cider``, which is CIDEr-D: clipped counts and a length penalty): TF-IDF vectors of 1- to
  4-grams, document frequency counted over the *references of the evaluated set* (so the score of one item
  depends on the others), idf = log(number of items) - log(max(1, df)); per n, the clipped cosine with each
  reference times exp(-delta^2 / (2 sigma^2)), sigma = 6; averaged over n and over references, times 10; the
  set's score is the mean over items. delta is computed as pycocoevalcap does: the difference of the
  *bigram* counts (``len - 1``) of prediction and reference, not of their word counts.

Tokens: :func:`tokenize` with ``"ptb"`` runs Stanford CoreNLP's PTBTokenizer (the jar pycocoevalcap ships,
through Java) and drops the same punctuation tokens, quirks included: ``-lowerCase`` turns brackets into
``-lrb-`` / ``-rrb-``, which pycocoevalcap's (upper-case) punctuation list misses, so they stay tokens;
``"none"`` splits on whitespace. Why the jar and not a Python copy of it: its lexer has hundreds of rules
(quotes by position, contractions, Unicode dashes and quotes, emoji dropped as untokenizable), so only the jar
itself gives pycocoevalcap's token lists on real captions; the tests check it against pycocoevalcap's own
wrapper on the club's 75 captions.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from photopoet.errors import TokenizerError

Tokens = list[str]

PRIMARY = "cider"
ROUGE_BETA = 1.2
CIDER_SIGMA = 6.0
MAX_N = 4
_TINY, _SMALL = 1e-15, 1e-9  # pycocoevalcap's BLEU smoothing constants

# pycocoevalcap's PTBTokenizer drops these tokens after tokenising
PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
PTB_JAR_NAME = "stanford-corenlp-3.4.1.jar"
# everything Java's line reader (or the lexer) would take as the end of a line: one caption must stay one line
_LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\x85\u2028\u2029"})


# ------------------------------------------------------------------------------------------------ tokenizers


def find_ptb_jar() -> Path | None:
    """The Stanford CoreNLP 3.4.1 jar: ``$PHOTOPOET_PTB_JAR``, else the copy inside an installed pycocoevalcap."""
    env = os.environ.get("PHOTOPOET_PTB_JAR")
    if env:
        return Path(env) if Path(env).is_file() else None
    try:
        import importlib.util

        spec = importlib.util.find_spec("pycocoevalcap")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        jar = Path(root) / "tokenizer" / PTB_JAR_NAME
        if jar.is_file():
            return jar
    return None


def ptb_tokenize(texts: Sequence[str], *, jar: Path | None = None, java: str | None = None) -> list[Tokens]:
    """PTB tokens of each text, lower-cased, punctuation tokens dropped, as pycocoevalcap's ``PTBTokenizer``.

    Runs ``java -cp stanford-corenlp-3.4.1.jar edu.stanford.nlp.process.PTBTokenizer -preserveLines
    -lowerCase`` on one text per line, as pycocoevalcap does. Line breaks inside a text (also ``\\r``,
    U+2028 and the like, which pycocoevalcap passes through and which then shift every later caption by a
    line) become spaces; the output must have exactly one line per text or :class:`TokenizerError` is raised.
    """
    texts = [str(t) for t in texts]
    if not texts:
        return []
    java = java or shutil.which("java")
    jar = jar or find_ptb_jar()
    if not java:
        raise TokenizerError(
            "--tokenizer ptb runs Stanford's PTBTokenizer and needs Java (java not found on PATH); "
            "install a Java runtime or use --tokenizer none"
        )
    if jar is None:
        raise TokenizerError(
            f"--tokenizer ptb needs {PTB_JAR_NAME} (it ships in pycocoevalcap: pip install pycocoevalcap, "
            "or set PHOTOPOET_PTB_JAR to the jar's path); or use --tokenizer none"
        )
    lines = [t.translate(_LINE_BREAKS) for t in texts]
    with tempfile.TemporaryDirectory(prefix="photopoet-ptb-") as tmp:
        src = Path(tmp) / "in.txt"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cmd = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase"]
        cmd += ["-encoding", "utf-8", str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TokenizerError(f"PTBTokenizer ({jar}) did not run: {e}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise TokenizerError(f"PTBTokenizer ({jar}) failed with exit code {proc.returncode}: {' '.join(err[-3:])}")
    out = proc.stdout.decode("utf-8").split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(texts):
        raise TokenizerError(f"PTBTokenizer gave {len(out)} lines for {len(texts)} texts; cannot line them up")
    return [[w for w in line.rstrip().split(" ") if w and w not in PTB_PUNCTUATION] for line in out]


def whitespace_tokenize(texts: Sequence[str]) -> list[Tokens]:
    """Split on whitespace; nothing else (case and punctuation kept)."""
    return [str(t).split() for t in texts]


TOKENIZERS = ("ptb", "none")


def tokenize(texts: Sequence[str], tokenizer: str = "ptb") -> list[Tokens]:
    """``"ptb"``: :func:`ptb_tokenize`; ``"none"``: :func:`whitespace_tokenize`."""
    if tokenizer == "ptb":
        return ptb_tokenize(texts)
    if tokenizer == "none":
        return whitespace_tokenize(texts)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}")


def tokenizer_description(tokenizer: str) -> str:
    if tokenizer == "ptb":
        return f"ptb: Stanford PTBTokenizer ({PTB_JAR_NAME}, -lowerCase), punctuation dropped, as pycocoevalcap"
    return "none: split on whitespace"


# ----------------------------------------------------------------------------------------------- n-grams


def ngram_counts(tokens: Sequence[str], n: int = MAX_N) -> Counter[tuple[str, ...]]:
    """Counts of every 1..n-gram of ``tokens``."""
    c: Counter[tuple[str, ...]] = Counter()
    toks = tuple(tokens)
    for k in range(1, n + 1):
        for i in range(len(toks) - k + 1):
            c[toks[i : i + k]] += 1
    return c


def _check(preds: Sequence[Tokens], refs: Sequence[Sequence[Tokens]]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} reference lists")
    for i, r in enumerate(refs):
        if len(r) == 0:
            raise ValueError(f"item {i} has no reference")


# ------------------------------------------------------------------------------------------------- BLEU


def bleu(preds: Sequence[Tokens], refs: Sequence[Sequence[Tokens]], n: int = MAX_N) -> list[float]:
    """Corpus BLEU-1..n (pycocoevalcap's ``Bleu(n)`` with the "closest" reference length)."""
    _check(preds, refs)
    correct = [0] * n
    guess = [0] * n
    test_len = 0
    ref_len = 0
    for pred, rs in zip(preds, refs, strict=True):
        hyp = ngram_counts(pred, n)
        best: dict[tuple[str, ...], int] = {}
        for r in rs:
            for g, c in ngram_counts(r, n).items():
                if c > best.get(g, 0):
                    best[g] = c
        lp = len(pred)
        test_len += lp
        ref_len += min((abs(len(r) - lp), len(r)) for r in rs)[1]
        for k in range(n):
            guess[k] += max(0, lp - k)
        for g, c in hyp.items():
            correct[len(g) - 1] += min(best.get(g, 0), c)
    scores = []
    prod = 1.0
    for k in range(n):
        prod *= (correct[k] + _TINY) / (guess[k] + _SMALL)
        scores.append(prod ** (1.0 / (k + 1)))
    ratio = (test_len + _TINY) / (ref_len + _SMALL)
    if ratio < 1:
        bp = math.exp(1 - 1 / ratio)
        scores = [s * bp for s in scores]
    return scores


# ----------------------------------------------------------------------------------------------- ROUGE-L


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row kept)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_item(pred: Tokens, refs: Sequence[Tokens], beta: float = ROUGE_BETA) -> float:
    """ROUGE-L F (beta 1.2) of one prediction: best precision and best recall over the references."""
    c = list(pred) or [""]  # pycocoevalcap splits "" into one empty token
    prec, rec = [], []
    for ref in refs:
        r = list(ref) or [""]
        lcs = lcs_length(r, c)
        prec.append(lcs / len(c))
        rec.append(lcs / len(r))
    p, r = max(prec), max(rec)
    if p == 0 or r == 0:
        return 0.0
    return (1 + beta**2) * p * r / (r + beta**2 * p)


def rouge_l(preds: Sequence[Tokens], refs: Sequence[Sequence[Tokens]]) -> tuple[float, list[float]]:
    """(mean, per item) ROUGE-L F, as pycocoevalcap's ``Rouge``."""
    _check(preds, refs)
    per = [rouge_l_item(p, r) for p, r in zip(preds, refs, strict=True)]
    return (sum(per) / len(per) if per else 0.0), per


# ------------------------------------------------------------------------------------------------- CIDEr


def _tfidf(counts: Counter, df: dict, log_n: float, n: int) -> tuple[list[dict], list[float], int]:
    vec: list[dict] = [{} for _ in range(n)]
    norm = [0.0] * n
    bigrams = 0
    for g, tf in counts.items():
        k = len(g) - 1
        w = float(tf) * (log_n - math.log(max(1.0, df.get(g, 0.0))))
        vec[k][g] = w
        norm[k] += w * w
        if k == 1:  # pycocoevalcap's "length" counts bigrams
            bigrams += tf
    return vec, [math.sqrt(x) for x in norm], bigrams


def cider(
    preds: Sequence[Tokens], refs: Sequence[Sequence[Tokens]], n: int = MAX_N, sigma: float = CIDER_SIGMA
) -> tuple[float, list[float]]:
    """(mean, per item) CIDEr-D, as pycocoevalcap's ``Cider`` (document frequency over these references)."""
    _check(preds, refs)
    if not preds:
        return 0.0, []
    ref_counts = [[ngram_counts(r, n) for r in rs] for rs in refs]
    df: Counter[tuple[str, ...]] = Counter()
    for rc in ref_counts:
        df.update({g for c in rc for g in c})
    log_n = math.log(float(len(preds)))
    per = []
    for pred, rc in zip(preds, ref_counts, strict=True):
        vh, nh, lh = _tfidf(ngram_counts(pred, n), df, log_n, n)
        total = [0.0] * n
        for c in rc:
            vr, nr, lr = _tfidf(c, df, log_n, n)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
            for k in range(n):
                val = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                if nh[k] != 0 and nr[k] != 0:
                    val /= nh[k] * nr[k]
                total[k] += val * penalty
        per.append(sum(total) / n / len(rc) * 10.0)
    return sum(per) / len(per), per


# ------------------------------------------------------------------------------------------------ together


def text_metrics(preds: Sequence[Tokens], refs: Sequence[Sequence[Tokens]]) -> dict[str, float | str | int]:
    """``bleu1``..``bleu4``, ``rougeL``, ``cider`` (primary), ``n`` (items) and ``primary``, on token lists."""
    _check(preds, refs)
    if not preds:
        raise ValueError("no items to score")
    b = bleu(preds, refs)
    out: dict[str, float | str | int] = {f"bleu{k + 1}": b[k] for k in range(MAX_N)}
    out["rougeL"] = rouge_l(preds, refs)[0]
    out["cider"] = cider(preds, refs)[0]
    out["n"] = len(preds)
    out["primary"] = PRIMARY
    return out


def score_texts(
    preds: Sequence[str], refs: Sequence[Sequence[str]], tokenizer: str = "ptb"
) -> dict[str, float | str | int]:
    """:func:`text_metrics` on raw strings, tokenised together (one tokenizer call for all)."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} reference lists")
    flat = list(preds) + [r for rs in refs for r in rs]
    toks = tokenize(flat, tokenizer)
    p_toks = toks[: len(preds)]
    r_toks: list[list[Tokens]] = []
    i = len(preds)
    for rs in refs:
        r_toks.append(toks[i : i + len(rs)])
        i += len(rs)
    out = text_metrics(p_toks, r_toks)
    out["tokenizer"] = tokenizer
    return out
