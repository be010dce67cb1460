"""Fake models for the caption and haiku tests: a hashing text encoder and a scripted generator."""

from __future__ import annotations

import hashlib

import numpy as np


class HashEncoder:
    """Bag-of-words hashing embedding: texts sharing words get a higher cosine."""

    name = "hash"
    dim = 64

    def encode(self, texts, kind="query"):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(",", " ").replace(";", " ").split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(n, 1e-12)


class ScriptedGenerator:
    """Returns the given continuations and records the prompts."""

    name = "scripted"

    def __init__(self, outputs: list[str]):
        self.outputs = outputs
        self.prompts: list[str] = []

    def generate(
        self, prompts, max_new_tokens=40, temperature=0.0, num_return_sequences=1, seed=0, *, stop=(), max_lines=0
    ):
        self.prompts.extend(prompts)
        return [list(self.outputs[:num_return_sequences]) for _ in prompts]
