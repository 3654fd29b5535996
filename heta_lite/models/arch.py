"""Per-architecture knowledge, in one table.

HETA's gate needs, per layer: the value vectors V (output of the value projection, after
the layer norm, bias included) and each head's slice of the output projection W_O. Every
architecture stores these differently; this table says where. Adding Mistral, Gemma or
Phi-3 is one `ArchSpec` entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn

from ..errors import UnsupportedModelError


@dataclass(frozen=True)
class HeadDims:
    num_heads: int  # H (query heads)
    num_kv_heads: int  # H_kv
    head_dim: int  # d_h
    hidden: int  # d

    def kv_index(self, device: torch.device | None = None) -> torch.Tensor:
        """kv(h) = h // (H / H_kv): the key/value head each query head reads (GQA)."""
        group = self.num_heads // self.num_kv_heads
        return torch.arange(self.num_heads, device=device) // group


@dataclass(frozen=True)
class ArchSpec:
    """Where the gate's ingredients live in one architecture family.

    layers: dotted path from the CausalLM to the list of decoder blocks.
    attn: attribute of a block holding the attention module.
    value: attribute of the attention module whose output holds V.
    value_slice: for fused q/k/v projections, which output columns are V.
    out_proj: attribute of the attention module with the output projection W_O.
    out_layout: 'linear' (weight is out x in) or 'conv1d' (GPT-2's Conv1D: in x out).
    document_separators: the token(s), first found in the vocabulary wins, that the family saw
    between pretraining documents: the frame token for raw text when the tokenizer adds no BOS
    (heta_lite/frame.py; spec 'Frame token'). Not the chat turn end: SmolLM2-Instruct's
    eos_token is `<|im_end|>`, its document separator `<|endoftext|>`.
    """

    name: str
    layers: str
    attn: str
    value: str
    out_proj: str
    out_layout: Literal["linear", "conv1d"] = "linear"
    value_slice: Callable[[HeadDims], slice] | None = None
    final_norm: str = "model.norm"  # dotted path of the norm before the LM head (logit lens)
    document_separators: tuple[str, ...] = ("<|endoftext|>",)

    def get(self, model: nn.Module, dotted: str) -> nn.Module:
        obj: object = model
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj  # type: ignore[return-value]

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return list(self.get(model, self.layers))  # type: ignore[arg-type]

    def attention(self, block: nn.Module) -> nn.Module:
        return getattr(block, self.attn)

    def value_module(self, block: nn.Module) -> nn.Module:
        return getattr(self.attention(block), self.value)

    def values_from_output(self, out: torch.Tensor, dims: HeadDims) -> torch.Tensor:
        """(B, n, width) value-module output -> (B, n, H_kv, d_h)."""
        if self.value_slice is not None:
            out = out[..., self.value_slice(dims)]
        return out.reshape(*out.shape[:-1], dims.num_kv_heads, dims.head_dim)

    def out_weight_per_head(self, block: nn.Module, dims: HeadDims) -> torch.Tensor:
        """W_O split by head: (H, d_h, d), so that V_i^h @ W_O[h] is head h's write to the residual."""
        w = getattr(self.attention(block), self.out_proj).weight
        if self.out_layout == "linear":  # nn.Linear: (d, H*d_h)
            w = w.t()
        return w.reshape(dims.num_heads, dims.head_dim, -1)


_LLAMA_LIKE = dict(layers="model.layers", attn="self_attn", value="v_proj", out_proj="o_proj")

# Frame tokens per family (spec 'Frame token'). Tokenizers that add a BOS (Llama-2/3, Mistral,
# Gemma) frame with it and never reach these; the rest (SmolLM2 on the llama architecture,
# Qwen2/2.5/3, GPT-2, and Phi-3, whose tokenizer adds none) get the document separator prepended.
_LLAMA_SEPARATORS = ("<|endoftext|>", "<|begin_of_text|>", "<s>")  # SmolLM2 / Llama-3 / Llama-2

ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", **_LLAMA_LIKE, document_separators=_LLAMA_SEPARATORS),
    "qwen2": ArchSpec("qwen2", **_LLAMA_LIKE),
    "qwen3": ArchSpec("qwen3", **_LLAMA_LIKE),
    "mistral": ArchSpec("mistral", **_LLAMA_LIKE, document_separators=("<s>",)),
    "gemma": ArchSpec("gemma", **_LLAMA_LIKE, document_separators=("<bos>",)),
    "gemma2": ArchSpec("gemma2", **_LLAMA_LIKE, document_separators=("<bos>",)),
    "phi3": ArchSpec(
        "phi3", layers="model.layers", attn="self_attn", value="qkv_proj", out_proj="o_proj",
        value_slice=lambda d: slice((d.num_heads + d.num_kv_heads) * d.head_dim, None),
        document_separators=("<|endoftext|>", "<s>"),
    ),
    "gpt2": ArchSpec(
        "gpt2", layers="transformer.h", attn="attn", value="c_attn", out_proj="c_proj",
        out_layout="conv1d", value_slice=lambda d: slice(2 * d.hidden, 3 * d.hidden), final_norm="transformer.ln_f",
    ),
}


def head_dims(config) -> HeadDims:
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = cfg.num_attention_heads
    hidden = cfg.hidden_size
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    hd = getattr(cfg, "head_dim", None) or hidden // heads
    return HeadDims(num_heads=heads, num_kv_heads=kv, head_dim=hd, hidden=hidden)


def arch_for(model: nn.Module) -> ArchSpec:
    """The table entry for a loaded model, or a clear error naming the supported families."""
    model_type = getattr(model.config, "model_type", "?")
    spec = ARCHITECTURES.get(model_type)
    if spec is None:
        raise UnsupportedModelError(
            f"Architecture '{model_type}' is not supported yet (supported: {', '.join(sorted(ARCHITECTURES))}); "
            "add an ArchSpec entry in heta_lite/models/arch.py or pick a supported model."
        )
    return spec
