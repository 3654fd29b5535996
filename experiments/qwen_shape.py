"""Qwen2.5-3B-shaped models with random weights and an in-process tokenizer: no download.

The product's GPU default is Qwen/Qwen2.5-3B-Instruct (heta_lite/models/catalogue.py). To measure
it where the weights cannot be fetched (and to test that measurement on a CPU), the architecture is
built from its published config with random weights, and a WordLevel tokenizer with Qwen's special
tokens stands in for the real one, so the engine's frame logic (raw text: prepend the document
separator <|endoftext|>) runs exactly as it would on the real model. Timings and memory depend on
the shape, not the weight values; attributions of random weights mean nothing and are not the point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from experiments.common import FILLER

# Qwen/Qwen2.5-3B-Instruct config.json, as published:
#   https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/config.json
# (read through mirrors of that file found with the search tool: hsuwill000/Qwen2.5-3B-Instruct-openvino,
# osllmai-community/Qwen2.5-3B-Instruct; transformers_version 4.43-4.44). 3.09 B parameters with tied
# embeddings. `sliding_window` is not used (use_sliding_window false; transformers then sets it to None).
QWEN25_3B_INSTRUCT: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 32768,
    "max_window_layers": 70,
    "num_attention_heads": 16,
    "num_hidden_layers": 36,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

# The same family, small enough for a CPU test: only the sizes differ (2 layers, hidden 64, 4 query
# heads sharing 2 KV heads as in the real model's 16 / 2, head_dim 16); the vocabulary is the
# tiny tokenizer's.
TINY_SIZES: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "num_key_value_heads": 2, "max_window_layers": 2}

# Qwen2.5's special tokens and their ids in the real vocabulary (tokenizer_config.json's
# added_tokens_decoder): <|endoftext|> separates pretraining documents (the frame token for raw text,
# heta_lite/frame.py), <|im_start|> / <|im_end|> open and close chat turns (eos of the Instruct model).
QWEN_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
UNK = "<unk>"  # WordLevel needs one; the prompts below use only vocabulary words


def words() -> list[str]:
    """The tokenizer's words: those of experiments.common.FILLER, in order of first appearance."""
    return list(dict.fromkeys(FILLER.split()))


def qwen_tokenizer(tiny: bool):
    """A fast tokenizer with Qwen's special tokens: whitespace-split words, no BOS added (like Qwen2.5).
    Full size: the special tokens keep their real ids (151643-151645); tiny: they follow the words,
    so the vocabulary (and the tiny model's embedding) is only len(words) + 4 entries."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    ws = words()
    vocab = {UNK: 0, **{w: i + 1 for i, w in enumerate(ws)}}
    base = len(vocab)
    for k, (piece, real_id) in enumerate(QWEN_SPECIALS.items()):
        vocab[piece] = base + k if tiny else real_id
    tk = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(list(QWEN_SPECIALS))
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=UNK)


def config_values(tiny: bool, tokenizer=None) -> dict[str, Any]:
    """The config.json values to build: the published ones, or the tiny sizes of the same family
    (vocabulary = the tokenizer's, special-token ids = the tokenizer's)."""
    values = dict(QWEN25_3B_INSTRUCT)
    if tiny:
        tokenizer = tokenizer or qwen_tokenizer(tiny=True)
        values.update(TINY_SIZES, vocab_size=max(tokenizer.get_vocab().values()) + 1,
                      bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                      eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    return values


def qwen2_config(tiny: bool, tokenizer=None):
    """transformers' Qwen2Config of `config_values` (eager attention: the gate needs attention
    probabilities; the engine switches to SDPA for passes that need none)."""
    from transformers import Qwen2Config

    values = {k: v for k, v in config_values(tiny, tokenizer).items() if k not in ("architectures", "model_type")}
    cfg = Qwen2Config(**values)
    cfg.architectures = ["Qwen2ForCausalLM"]
    cfg._attn_implementation = "eager"
    return cfg


def random_model(cfg, device: str | torch.device, dtype: torch.dtype, seed: int = 0):
    """Random weights created directly on `device` in `dtype` (no fp32 copy on the CPU first)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="eager")
    return model.eval()


def save_folder(model, tokenizer, folder: str | Path) -> Path:
    """A local model folder that heta_lite.models.load_model reads like any other (the path every
    quantized mode takes: transformers' bitsandbytes quantizer in from_pretrained)."""
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def prompt_words(n: int) -> str:
    """n words of ordinary text from the tokenizer's vocabulary: with the frame token prepended,
    position n is the target and the context is exactly n tokens (frame + n - 1 words)."""
    text = FILLER.split()
    return " ".join(text[i % len(text)] for i in range(n))
