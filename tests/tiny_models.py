"""Tiny randomly initialised models for hub-tier tests, built from configs (no weights are downloaded)."""

from __future__ import annotations

import json
import string
from pathlib import Path


def make_tiny_clip(d: Path) -> Path:
    """A 2-layer CLIP (16-d projection, 32 px images, a letter vocabulary) saved to ``d`` with its tokenizer and
    image processor, loadable by id like a hub model."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from photopoet.models.hub import _load_image_processor  # noqa: F401  (the class the hub tier uses)

    letters = string.ascii_lowercase
    toks = ["<|startoftext|>", "<|endoftext|>", *letters, *(c + "</w>" for c in letters)]
    merges = ["c a", "ca t</w>", "d o", "do g</w>"]
    toks += ["ca", "cat</w>", "do", "dog</w>"]
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(toks)}))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(toks),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CLIPModel(cfg)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    try:
        from transformers import CLIPImageProcessorPil as Proc
    except ImportError:
        from transformers import CLIPImageProcessor as Proc
    Proc(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
    return d
