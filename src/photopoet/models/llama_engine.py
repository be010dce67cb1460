"""Causal-LM generation on a GGUF file through llama.cpp (the ``llama_cpp`` package's C API), on the CPU.

The offline tier's engine: Gemma 3 270M Q4_K_M loads in under a second and decodes several times faster here
than through ``transformers`` (figures in docs/benchmarks.md). :class:`LlamaCppLM` implements
:class:`photopoet.models.base.Generator` and decodes every continuation of one :meth:`~LlamaCppLM.generate`
call together:

- **one batch for all sequences**: the prompts of a call, each with its ``num_return_sequences``
  continuations, advance one token per step in a single ``llama_decode`` (up to ``max_seqs`` at once);
- **prompts evaluated once**: the tokens the prompts of a call share (a few-shot header) are decoded once and
  their cache cells shared by every sequence; a few such prefixes stay in the cache between calls, so the
  next post's haiku prompt only evaluates its own last lines. The continuations of one prompt share its cells;
- **stop early**: a sequence ends at an end-of-generation token, at ``max_new_tokens``, or as soon as its text
  holds one of the ``stop`` strings (the text is cut there).

Decoding follows :class:`photopoet.models._lm.TransformersCausalLM`: temperature 0 is greedy, and with several
continuations a beam search returning the best distinct beams (length-normalised log-probability); above 0,
sampling with ``top_k`` then ``top_p``, each continuation from its own generator seeded by ``(seed, k)``, so a
prompt's samples depend neither on the other prompts of the call nor on the batch. Tokens that are control or
markup tokens (``<start_of_image>``, ``<unusedNN>``) are never sampled.

Threads: ``threads=0`` takes the cores that are free when a call starts (other processes' busy cores from
/proc/stat, not this process's own earlier work), at least one; llama.cpp's threads spin while they
wait, so asking for busy cores makes every thread slower (measured in ``benchmarks/write_engine.py``).

Importing this module is cheap; ``llama_cpp`` loads with the first model.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.errors import LlamaCppUnavailable
from photopoet.models.base import check_generate_args, stop_at

logger = logging.getLogger(__name__)

_N_BATCH = 4096  # tokens per llama_decode call (split into micro-batches of 512 inside)
_Stop = tuple[tuple[str, ...], int]  # (stop strings, max_lines): where a continuation ends
_MARKUP = re.compile(r"^(<[^<>\s]+>|\[[^\[\]\s]+\])$")


def load_llama_cpp() -> Any:
    """The ``llama_cpp`` module with its C library loaded and its log quietened, or :class:`LlamaCppUnavailable`."""
    try:
        import llama_cpp
    except (ImportError, OSError) as e:  # OSError: the shared library fails to load
        raise LlamaCppUnavailable(f"llama-cpp-python is not usable here ({e})") from e
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:  # llama.cpp logs every tensor it loads: pass on its errors only

        @llama_cpp.llama_log_callback
        def _log(level: int, text: bytes, user_data: Any) -> None:
            if level == 4:  # GGML_LOG_LEVEL_ERROR (ggml: none 0, debug 1, info 2, warn 3, error 4, cont 5)
                logger.error("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

        _LOG_CALLBACK = _log  # kept alive: the C library holds the pointer
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    return llama_cpp


_LOG_CALLBACK: Any = None


def busy_cores(before: Sequence[int], after: Sequence[int], own_s: float, wall_s: float, hz: int) -> float:
    """Cores kept busy by other processes between two readings of /proc/stat's ``cpu`` line (user, nice, system,
    idle, iowait, irq, softirq, steal, ... ticks of 1/``hz`` s): busy ticks less this process's own ``own_s`` CPU
    seconds, over ``wall_s`` seconds. Niced processes count: with the kernel's autogroups (the default on many
    systems, this one included) a nice 19 job started from another session still takes its fair share of a core."""
    d = [b - a for a, b in zip(before, after, strict=False)]
    busy = sum(d[0:3]) + sum(d[5:8])  # user, nice, system, irq, softirq, steal
    return max(0.0, (busy / hz - own_s) / max(wall_s, 1e-6))


def _cpu_line() -> list[int]:
    with open("/proc/stat", "rb") as f:
        return [int(x) for x in f.readline().split()[1:]]


def _others_busy(sample_s: float = 0.1) -> float | None:
    """Cores other processes keep busy now, sampled over ``sample_s``; None where /proc/stat is absent."""
    try:
        a, own_a, t = _cpu_line(), os.times(), time.monotonic()
        time.sleep(sample_s)
        b, own_b, wall = _cpu_line(), os.times(), time.monotonic() - t
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    own = (own_b.user + own_b.system) - (own_a.user + own_a.system)
    return busy_cores(a, b, own, wall, hz)


def free_cores() -> int:
    """Cores this process may use that other processes are not busy on: the CPUs it is allowed, less the cores
    other processes keep busy right now (from /proc/stat, not counting this process's own earlier work, which the
    load average would: after a stage that used every core it left one thread);
    where /proc/stat is missing, less the 1-minute load average not counting one core for this process; at
    least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    others = _others_busy()
    if others is None:
        try:
            others = max(0.0, os.getloadavg()[0] - 1.0)
        except OSError:
            return cpus
    return max(1, min(cpus, int(cpus - others + 0.5)))


@dataclass
class _Seq:
    """One continuation being decoded."""

    prompt: int  # index of its prompt in the call
    k: int  # its index among the prompt's continuations
    seq_id: int
    pos: int  # position of the next token
    last: int  # the token to feed next
    rng: np.random.Generator | None = None
    out: list[int] = field(default_factory=list)
    text: str = ""
    logprob: float = 0.0  # beam search: sum of the log-probabilities of ``out``
    done: bool = False


@dataclass
class GenerationStats:
    """What the engine did since it loaded: for benchmarks and the run's timing table."""

    load_s: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0  # prompt tokens evaluated (those reused from the cache not counted)
    reused_tokens: int = 0  # prompt tokens whose cache cells were reused
    new_tokens: int = 0  # tokens generated
    decode_s: float = 0.0  # seconds inside generate()

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.decode_s if self.decode_s > 0 else 0.0


class LlamaCppLM:
    """A GGUF causal LM run by llama.cpp; loads on the first :meth:`generate` (or :meth:`load`).

    ``source`` is the .gguf path or a callable returning it (called once at load time: the offline tier
    assembles the packaged file into its cache first). ``threads``: 0 picks the free cores at each call.
    ``n_ctx`` cache cells are shared by all sequences of a call (prompt prefixes count once).
    """

    def __init__(
        self,
        name: str,
        source: str | Path | Callable[[], str | Path],
        *,
        threads: int = 0,
        n_ctx: int = 8192,
        max_seqs: int = 32,
        prefix_slots: int = 4,
        top_k: int = 64,
        top_p: float = 0.95,
    ) -> None:
        if max_seqs < 2:
            raise ValueError(f"max_seqs must be at least 2, got {max_seqs}")
        if prefix_slots < 2:
            raise ValueError(f"prefix_slots must be at least 2, got {prefix_slots}")
        self.name = name
        self._source = source
        self.threads = int(threads)
        self.n_ctx = int(n_ctx)
        self.max_seqs = int(max_seqs)
        self.prefix_slots = int(prefix_slots)
        self.top_k = top_k
        self.top_p = top_p
        self.stats = GenerationStats()
        self._lock = threading.RLock()
        self._ll: Any = None
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Any = None
        self._batch: Any = None
        self._batch_cap = 0
        self._n_vocab = 0
        self._eog: set[int] = set()
        self._suppress: np.ndarray = np.zeros(0, np.int64)
        self._pieces: dict[int, bytes] = {}
        self._slots: list[tuple[int, list[int]]] = []  # prefix cache: (seq id, tokens), most recent last
        self._threads_now = 0
        self._n_batch = _N_BATCH

    # ------------------------------------------------------------------------------------------- loading

    @property
    def source(self) -> str:
        return str(self._source() if callable(self._source) else self._source)

    @property
    def loaded(self) -> bool:
        return self._ctx is not None

    def load(self) -> None:
        with self._lock:
            if self._ctx is not None:
                return
            t0 = time.perf_counter()
            ll = load_llama_cpp()
            path = self.source
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such GGUF file")
            ll.llama_backend_init()
            mp = ll.llama_model_default_params()
            model = ll.llama_model_load_from_file(path.encode(), mp)
            if not model:
                raise RuntimeError(f"{path}: llama.cpp could not load the model")
            cp = ll.llama_context_default_params()
            cp.n_ctx = self.n_ctx
            self._n_batch = min(_N_BATCH, self.n_ctx)
            cp.n_batch = self._n_batch
            cp.n_ubatch = min(512, self._n_batch)
            cp.n_seq_max = self.max_seqs + self.prefix_slots
            cp.kv_unified = True  # cells shared by several sequences (a prompt prefix) are stored once
            threads = self.threads or free_cores()
            cp.n_threads = threads
            cp.n_threads_batch = threads
            ctx = ll.llama_init_from_model(model, cp)
            if not ctx:
                ll.llama_model_free(model)
                raise RuntimeError(f"{path}: llama.cpp could not make a context of {self.n_ctx} tokens")
            self._ll, self._model, self._ctx = ll, model, ctx
            self._threads_now = threads
            self._vocab = ll.llama_model_get_vocab(model)
            self._n_vocab = int(ll.llama_vocab_n_tokens(self._vocab))
            self._read_vocab()
            self._ensure_batch(512)
            self.stats.load_s = time.perf_counter() - t0

    def _read_vocab(self) -> None:
        """End-of-generation ids, and the control / markup / unused ids that are never sampled."""
        ll, vocab = self._ll, self._vocab
        control = ll.LLAMA_TOKEN_ATTR_CONTROL | ll.LLAMA_TOKEN_ATTR_UNUSED | ll.LLAMA_TOKEN_ATTR_UNKNOWN
        suppress, eog = [], set()
        for t in range(self._n_vocab):
            if ll.llama_vocab_is_eog(vocab, t):
                eog.add(t)
                continue
            attr = int(ll.llama_vocab_get_attr(vocab, t))
            if attr & control:
                suppress.append(t)
            elif attr & ll.LLAMA_TOKEN_ATTR_USER_DEFINED:
                text = (ll.llama_vocab_get_text(vocab, t) or b"").decode("utf-8", "replace")
                if _MARKUP.match(text):
                    suppress.append(t)
        self._eog = eog
        self._suppress = np.asarray(suppress, np.int64)

    def _ensure_batch(self, n: int) -> None:
        if n <= self._batch_cap:
            return
        if self._batch is not None:
            self._ll.llama_batch_free(self._batch)
        cap = max(n, 2 * self._batch_cap)
        self._batch = self._ll.llama_batch_init(cap, 0, 1)
        self._batch_cap = cap

    def close(self) -> None:
        """Free the context and the model (a later call loads them again)."""
        with self._lock:
            if self._ctx is None:
                return
            ll = self._ll
            if self._batch is not None:
                ll.llama_batch_free(self._batch)
            ll.llama_free(self._ctx)
            ll.llama_model_free(self._model)
            self._ctx = self._model = self._batch = None
            self._batch_cap = 0
            self._slots = []

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()

    # ----------------------------------------------------------------------------------------- tokens

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self.load()
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (self._ll.llama_token * cap)()
        n = self._ll.llama_tokenize(self._vocab, data, len(data), buf, cap, add_bos, True)
        if n < 0:
            cap = -n
            buf = (self._ll.llama_token * cap)()
            n = self._ll.llama_tokenize(self._vocab, data, len(data), buf, cap, add_bos, True)
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        p = self._pieces.get(token)
        if p is None:
            buf = ctypes.create_string_buffer(64)
            n = self._ll.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._ll.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            p = buf.raw[:n]
            self._pieces[token] = p
        return p

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", "ignore")

    # ------------------------------------------------------------------------------------ cache cells

    @property
    def _mem(self) -> Any:
        return self._ll.llama_get_memory(self._ctx)

    def _decode(self, items: Sequence[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence id, wants logits) items, in chunks of the context's batch size."""
        ll = self._ll
        step = self._n_batch
        for i in range(0, len(items), step):
            chunk = items[i : i + step]
            self._ensure_batch(len(chunk))
            b = self._batch
            b.n_tokens = len(chunk)
            for j, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[j] = tok
                b.pos[j] = pos
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = seq
                b.logits[j] = logits
            rc = ll.llama_decode(self._ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc}): the cache of {self.n_ctx} tokens may be full")

    def _rows(self, m: int) -> np.ndarray:
        """The next-token logits of the last decode's ``m`` outputs, in batch order, control tokens masked: [m, V]."""
        ptr = self._ll.llama_get_logits(self._ctx)
        rows = np.ctypeslib.as_array(ptr, shape=(m, self._n_vocab)).copy()
        if len(self._suppress):
            rows[:, self._suppress] = -np.inf
        return rows

    def _prefix_seq(self, prefix: list[int]) -> int:
        """A prefix slot's sequence id whose cells hold ``prefix``: the slot sharing the longest start with it
        is extended in place when all of it matches, else its matching cells are copied into a free slot (the
        least recently used one is dropped when none is free); only the rest is decoded."""
        ll, mem = self._ll, self._mem

        def shared(toks: list[int]) -> int:
            m = 0
            for a, b in zip(toks, prefix, strict=False):
                if a != b:
                    break
                m += 1
            return m

        lens = [shared(toks) for _, toks in self._slots]
        best = int(np.argmax(lens)) if lens else -1
        best_len = lens[best] if lens else 0
        if best >= 0 and best_len == len(self._slots[best][1]):
            sid, have = self._slots.pop(best)  # extend it in place
        else:
            used = [s for s, _ in self._slots]
            free = [s for s in range(self.prefix_slots) if s not in used]
            if free:
                sid = free[0]
            else:  # drop the least recently used slot that is not the one to copy from
                victim = next(i for i in range(len(self._slots)) if i != best)
                sid = self._slots.pop(victim)[0]
                if victim < best:
                    best -= 1
            ll.llama_memory_seq_rm(mem, sid, -1, -1)
            if best_len > 0:
                ll.llama_memory_seq_cp(mem, self._slots[best][0], sid, 0, best_len)
            have = prefix[:best_len]
        rest = prefix[len(have) :]
        if rest:
            self._decode([(t, len(have) + i, sid, False) for i, t in enumerate(rest)])
        self.stats.prompt_tokens += len(rest)
        self.stats.reused_tokens += len(prefix) - len(rest)
        self._slots.append((sid, list(prefix)))
        return sid

    # ------------------------------------------------------------------------------------- generation

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int = 40,
        temperature: float = 0.0,
        num_return_sequences: int = 1,
        seed: int = 0,
        *,
        stop: Sequence[str] = (),
        max_lines: int = 0,
    ) -> list[list[str]]:
        check_generate_args(prompts, max_new_tokens, temperature, num_return_sequences)
        if not prompts:
            return []
        self.load()
        with self._lock:
            t0 = time.perf_counter()
            if not self.threads:
                n = free_cores()
                if n != self._threads_now:
                    self._ll.llama_set_n_threads(self._ctx, n, n)
                    self._threads_now = n
            n = num_return_sequences
            beams = temperature == 0 and n > 1
            per_prompt = 2 * n if beams else n
            if per_prompt > self.max_seqs:
                raise ValueError(f"{n} continuations need {per_prompt} sequences; this engine decodes {self.max_seqs}")
            toks = [self.tokenize(p) for p in prompts]
            out: list[list[str]] = []
            for part in self._groups(toks, self.max_seqs // per_prompt, n, max_new_tokens):
                if beams:
                    out.extend(self._beam_group(part, max_new_tokens, n, (tuple(stop), max_lines)))
                else:
                    out.extend(
                        self._sample_group(part, max_new_tokens, float(temperature), n, seed, (tuple(stop), max_lines))
                    )
            self.stats.calls += 1
            self.stats.decode_s += time.perf_counter() - t0
            return out

    def _groups(self, toks: list[list[int]], most: int, n: int, max_new: int) -> list[list[list[int]]]:
        """The prompts in order, in groups of at most ``most`` whose cache cells fit the context; the prefix
        cache is emptied when a group needs its room. A prompt that cannot fit alone is a clear error."""

        def need(part: list[list[int]]) -> int:
            return sum(len(t) for t in part) + len(part) * n * max_new

        groups: list[list[list[int]]] = []
        for t in toks:
            if need([t]) > self.n_ctx:
                raise RuntimeError(
                    f"a prompt of {len(t)} tokens with {n} continuation(s) of up to {max_new} tokens does not fit "
                    f"the cache of {self.n_ctx} tokens"
                )
            if groups and len(groups[-1]) < most and need([*groups[-1], t]) <= self.n_ctx:
                groups[-1].append(t)
            else:
                groups.append([t])
        held = sum(len(x) for _, x in self._slots)
        if any(need(g) + held > self.n_ctx for g in groups):
            self._drop_prefixes()
        return groups

    def _drop_prefixes(self) -> None:
        for sid, _ in self._slots:
            self._ll.llama_memory_seq_rm(self._mem, sid, -1, -1)
        self._slots = []

    def _start(self, part: list[list[int]], stride: int, copies: int) -> tuple[list[int], np.ndarray]:
        """Decode the prompts of a group: their shared prefix once (in a prefix slot), each rest in its own
        sequence. Prompt ``j`` owns the ids ``first[j] = prefix_slots + j * stride`` onwards. Returns each
        prompt's first id and its next-token logits; the prompt's cells are shared with ``copies - 1`` further
        ids (``first[j] + 1 ...``)."""
        ll, mem = self._ll, self._mem
        shortest = min(len(t) for t in part)
        common = 0
        while common < shortest - 1 and all(t[common] == part[0][common] for t in part):
            common += 1
        slot = self._prefix_seq(part[0][:common]) if common else None
        base = self.prefix_slots
        items, first, ends = [], [], []
        for j, t in enumerate(part):
            sid = base + j * stride
            first.append(sid)
            ll.llama_memory_seq_rm(mem, sid, -1, -1)
            if slot is not None:
                ll.llama_memory_seq_cp(mem, slot, sid, 0, common)
            rest = t[common:]
            items += [(tok, common + q, sid, q == len(rest) - 1) for q, tok in enumerate(rest)]
            ends.append(len(items) - 1)
            self.stats.prompt_tokens += len(rest)
        if len(items) > self._n_batch:  # logits survive only for the last llama_decode: the last tokens on their own
            last = set(ends)
            self._decode([it for q, it in enumerate(items) if q not in last])
            items = [items[i] for i in ends]
        self._decode(items)
        logits = self._rows(len(part))  # one output per prompt, in order
        for j, t in enumerate(part):
            for c in range(1, copies):
                ll.llama_memory_seq_rm(mem, first[j] + c, -1, -1)
                ll.llama_memory_seq_cp(mem, first[j], first[j] + c, 0, len(t))
        return first, logits

    def _picks(self, rows: np.ndarray, temperature: float, rngs: Sequence[np.random.Generator | None]) -> list[int]:
        """The next token of each row: the most likely one (temperature 0), else a sample from the ``top_k`` most
        likely, cut to ``top_p`` of the probability, drawn with the row's own generator."""
        if temperature == 0:
            return [int(t) for t in rows.argmax(axis=1)]
        import torch

        k = min(self.top_k or rows.shape[1], rows.shape[1])
        vals, idx = torch.topk(torch.from_numpy(rows), k, dim=1)  # sorted, largest first; far faster than numpy
        vals, idx = vals.double().numpy() / temperature, idx.numpy()
        out = []
        for v, ix, rng in zip(vals, idx, rngs, strict=True):
            p = np.exp(v - v[0])
            p /= p.sum()
            if self.top_p < 1.0:
                keep = int(np.searchsorted(np.cumsum(p), self.top_p) + 1)
                ix, p = ix[:keep], p[:keep] / p[:keep].sum()
            out.append(int(ix[rng.choice(len(ix), p=p)]))
        return out

    @staticmethod
    def _top_logprobs(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the ``k`` best tokens and their log-probabilities: ([m, k] float64, [m, k] ids)."""
        import torch

        t = torch.from_numpy(rows)
        vals, idx = torch.topk(t, k, dim=1)
        lse = torch.logsumexp(t, dim=1, keepdim=True)
        return (vals - lse).double().numpy(), idx.numpy()

    def _advance(self, s: _Seq, token: int, max_new: int, stop: _Stop) -> None:
        """Append ``token`` to ``s`` and mark it done at an end token, the length limit, a stop string or the
        line limit (``stop`` is (strings, max_lines))."""
        if token in self._eog:
            s.done = True
            return
        s.out.append(token)
        s.last = token
        s.text = self.detokenize(s.out)
        if stop[0] or stop[1] > 0:
            cut = stop_at(s.text, *stop)
            if cut is not None:
                s.text = cut
                s.done = True
                return
        if len(s.out) >= max_new:
            s.done = True

    def _sample_group(
        self, part: list[list[int]], max_new: int, temperature: float, n: int, seed: int, stop: _Stop
    ) -> list[list[str]]:
        ll, mem = self._ll, self._mem
        first, logits = self._start(part, n, n)
        seqs: list[_Seq] = []
        for j, t in enumerate(part):
            for k in range(n):
                rng = np.random.default_rng([seed, k]) if temperature > 0 else None
                seqs.append(_Seq(j, k, first[j] + k, len(t), -1, rng))
        rows = logits[[s.prompt for s in seqs]]
        for s, tok in zip(seqs, self._picks(rows, temperature, [s.rng for s in seqs]), strict=True):
            self._advance(s, tok, max_new, stop)
        live = [s for s in seqs if not s.done]
        while live:
            self._decode([(s.last, s.pos, s.seq_id, True) for s in live])
            picks = self._picks(self._rows(len(live)), temperature, [s.rng for s in live])
            for s, tok in zip(live, picks, strict=True):
                s.pos += 1
                self._advance(s, tok, max_new, stop)
            for s in live:
                if s.done:
                    ll.llama_memory_seq_rm(mem, s.seq_id, -1, -1)
            live = [s for s in live if not s.done]
        for s in seqs:
            ll.llama_memory_seq_rm(mem, s.seq_id, -1, -1)
        self.stats.new_tokens += sum(len(s.out) for s in seqs)
        res: list[list[str]] = [[] for _ in part]
        for s in seqs:
            res[s.prompt].append(s.text)
        return res

    def _beam_group(self, part: list[list[int]], max_new: int, n: int, stop: _Stop) -> list[list[str]]:
        """Beam search with ``n`` beams per prompt; the ``n`` best finished hypotheses (sum of log-probabilities
        over length), stopping once ``n`` have finished (early stopping)."""
        ll, mem = self._ll, self._mem
        first, logits = self._start(part, 2 * n, 1)
        finished: list[list[tuple[float, str]]] = [[] for _ in part]
        beams: list[list[_Seq]] = []
        for j, t in enumerate(part):
            beams.append([_Seq(j, 0, first[j], len(t), -1)])
        rows = logits  # one row per live beam, in the order of ``beams``
        for _ in range(max_new + 1):
            top_lp, top_id = self._top_logprobs(rows, 2 * n)
            r = 0
            for j in range(len(part)):
                cur = beams[j]
                if not cur:
                    continue
                cands: list[tuple[float, int, int]] = []  # (score, beam index, token)
                for b, s in enumerate(cur):
                    cands += [(s.logprob + float(v), b, int(t)) for v, t in zip(top_lp[r], top_id[r], strict=True)]
                    r += 1
                cands.sort(key=lambda c: -c[0])
                nxt: list[tuple[_Seq, int, float]] = []
                for score, b, tok in cands:
                    parent = cur[b]
                    child = _Seq(j, 0, -1, parent.pos, parent.last, out=list(parent.out), logprob=score)
                    self._advance(child, tok, max_new, stop)
                    if child.done:
                        if len(nxt) < n:  # a finished hypothesis counts among the beams it beat
                            length = max(1, len(child.out) + (tok in self._eog))
                            finished[j].append((score / length, child.text))
                        continue
                    nxt.append((child, b, score))
                    if len(nxt) == n:
                        break
                if len(finished[j]) >= n:
                    nxt = []
                # move the survivors into the other half of the prompt's ids, sharing their parents' cells
                half = 0 if cur[0].seq_id >= first[j] + n else n
                for c, (child, b, _) in enumerate(nxt):
                    sid = first[j] + half + c
                    ll.llama_memory_seq_rm(mem, sid, -1, -1)
                    ll.llama_memory_seq_cp(mem, cur[b].seq_id, sid, -1, -1)
                    child.seq_id = sid
                for s in cur:
                    ll.llama_memory_seq_rm(mem, s.seq_id, -1, -1)
                beams[j] = [c for c, _, _ in nxt]
                self.stats.new_tokens += len(nxt)
            live = [s for bs in beams for s in bs]
            if not live:
                break
            self._decode([(s.last, s.pos, s.seq_id, True) for s in live])
            for s in live:
                s.pos += 1
            rows = self._rows(len(live))
        for j, bs in enumerate(beams):  # the length limit: what is left counts as finished
            for s in bs:
                finished[j].append((s.logprob / max(1, len(s.out)), s.text))
                ll.llama_memory_seq_rm(mem, s.seq_id, -1, -1)
        res = []
        for f in finished:
            f.sort(key=lambda x: -x[0])
            res.append([text for _, text in f[:n]] or [""])
        return res
