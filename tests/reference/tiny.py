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


def tiny_qwen3(dtype=torch.float32):
    """Qwen3: GQA (4 query / 2 KV heads), q/k RMSNorm per head, and an explicit head_dim = 16 with
    hidden 32: H * head_dim = 64 != hidden, so q/v widths and W_O's input differ from hidden."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
                      attn_implementation="eager", tie_word_embeddings=False, initializer_range=0.3)
    return _finish(Qwen3ForCausalLM(cfg), dtype)


def tiny_mistral(dtype=torch.float32, sliding_window=64):
    """Mistral: GQA with groups of 4 (8 query / 2 KV heads), no biases, head_dim = 8 set explicitly
    (H * head_dim = 64 != hidden 32, as in Mistral-NeMo), sliding-window attention (64 tokens by
    default, longer than the test contexts; pass a shorter one to make the window bite)."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=8, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                        sliding_window=sliding_window, attn_implementation="eager", tie_word_embeddings=False,
                        initializer_range=0.3)
    return _finish(MistralForCausalLM(cfg), dtype)


def tiny_gemma(dtype=torch.float32):
    """Gemma: multi-query attention (4 query heads, 1 KV head), explicit head_dim = 16 (H * head_dim
    = 64 != hidden 32), embeddings scaled by sqrt(hidden) inside the model, (1 + w) RMSNorm, tied
    embeddings."""
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    cfg = GemmaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
                      attn_implementation="eager", initializer_range=0.3)
    return _finish(GemmaForCausalLM(cfg), dtype)


def tiny_gemma2(dtype=torch.float32, sliding_window=64):
    """Gemma-2: GQA (4 query / 2 KV heads), head_dim = 12 (H * head_dim = 48 != hidden 32), attention
    and final-logit soft-capping set low (2 and 3) so that the tanh caps change the numbers, and
    alternating sliding-window / global layers (window 64 by default, longer than the test
    contexts; pass a shorter one to make it bite). transformers has no SDPA for Gemma-2."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=12, query_pre_attn_scalar=12,
                       max_position_embeddings=128, sliding_window=sliding_window, attn_logit_softcapping=2.0,
                       final_logit_softcapping=3.0, attn_implementation="eager", initializer_range=0.3)
    return _finish(Gemma2ForCausalLM(cfg), dtype)


def tiny_phi3(dtype=torch.float32):
    """Phi-3: fused qkv_proj (columns q | k | v, widths H*hd, H_kv*hd, H_kv*hd) with GQA
    (4 query / 2 KV heads), so V is the last H_kv*hd columns, not a third of them."""
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    cfg = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                     attn_implementation="eager", tie_word_embeddings=False, initializer_range=0.3,
                     resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, pad_token_id=0,
                     bos_token_id=1, eos_token_id=2)
    return _finish(Phi3ForCausalLM(cfg), dtype)


# One builder per family in heta_lite.models.arch.ARCHITECTURES (tests/test_families_vs_reference.py
# fails for a listed family without one).
TINY_BUILDERS = {"qwen2": tiny_qwen2, "llama": tiny_llama, "gpt2": tiny_gpt2, "qwen3": tiny_qwen3,
                 "mistral": tiny_mistral, "gemma": tiny_gemma, "gemma2": tiny_gemma2, "phi3": tiny_phi3}
