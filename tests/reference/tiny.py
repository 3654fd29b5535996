"""Tiny causal LMs with random weights, built in-process from a config (no download)."""
from __future__ import annotations

import torch


def _finish(model, dtype):
    model.eval()
    # make every bias non-zero so bias handling is exercised (some inits zero them)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.to(dtype)


def tiny_qwen2(dtype=torch.float32):
    """Qwen2: grouped-query attention (4 query heads, 2 KV heads) and q/k/v biases."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      attn_implementation="eager", tie_word_embeddings=False,
                      initializer_range=0.3)
    return _finish(Qwen2ForCausalLM(cfg), dtype)


def tiny_llama(dtype=torch.float32):
    """Llama: grouped-query attention (4 query heads, 2 KV heads), no biases."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      attn_implementation="eager", initializer_range=0.3)
    return _finish(LlamaForCausalLM(cfg), dtype)


def tiny_gpt2(dtype=torch.float32):
    """GPT-2: fused Conv1D q/k/v, LayerNorm (a true float64 model when cast)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_embd=32, n_head=4, n_layer=2, n_positions=128, attn_implementation="eager",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.3)
    return _finish(GPT2LMHeadModel(cfg), dtype)


TINY_BUILDERS = {"qwen2": tiny_qwen2, "llama": tiny_llama, "gpt2": tiny_gpt2}
