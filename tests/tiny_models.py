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


def make_tiny_gemma(d: Path, texts: list[str]) -> Path:
    """A randomly initialised 2-layer Gemma 3 text model (32-d) with a byte-level BPE tokenizer trained on ``texts``,
    saved to ``d``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<eos>", "<bos>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(list(texts) + ["Topic: Caption: Instagram captions written by a club"], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", bos_token="<bos>", pad_token="<pad>")
    cfg = Gemma3TextConfig(
        vocab_size=tk.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Gemma3ForCausalLM(cfg)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d
