"""The key/value cache argument across transformers versions (heta_lite/models/kv_cache.py):
the name a model's forward takes, and that generation and the masked passes use it without the
deprecation warning (an error here) and with the answers of a cache-free recomputation."""
from __future__ import annotations

import warnings

import pytest
import torch

from heta_lite.methods.masking import masked_last_logits
from heta_lite.models import wrap_model
from heta_lite.models.kv_cache import _cache_name, returned_cache, with_cache
from heta_lite.targets import greedy_generate
from tests.reference.tiny import TINY_BUILDERS


class _Old(torch.nn.Module):
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):
        return None


class _New(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, use_cache=None):
        return None


def test_the_name_follows_the_forward_signature():
    assert _cache_name(_Old) == "past_key_values" and with_cache(_Old(), 1) == {"past_key_values": 1}
    assert _cache_name(_New) == "cache" and with_cache(_New(), 2) == {"cache": 2}


def test_the_returned_cache_is_read_under_either_name():
    class Out:  # a 4.x output: no `cache` field
        past_key_values = "old"

    class NewOut:
        cache, past_key_values = "new", "ignored"

    assert returned_cache(Out()) == "old" and returned_cache(NewOut()) == "new"


@pytest.mark.parametrize("family", ["llama", "gpt2", "mistral"])
def test_generation_and_masking_without_the_deprecation_warning(family):
    model = TINY_BUILDERS[family]()
    ids = [3, 17, 5, 9, 22, 41, 8]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        got = greedy_generate(model, ids, max_new_tokens=5, eos_ids=set())
    want, seq = [], list(ids)  # greedy by full recomputation, no cache
    with torch.no_grad():
        for _ in range(5):
            nxt = int(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].argmax())
            want.append(nxt)
            seq.append(nxt)
    assert got == want

    lm = wrap_model(model)
    X = model.get_input_embeddings()(torch.tensor(ids)).detach()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        chunks = list(masked_last_logits(lm, X, list(range(1, len(ids))), "zero", batch=3))
    with torch.no_grad():
        for chunk, logits in chunks:
            for row, i in zip(logits, chunk):
                Xi = X.clone()
                Xi[i] = 0
                ref = model(inputs_embeds=Xi[None], use_cache=False).logits[0, -1]
                assert torch.allclose(row, ref, atol=1e-4), (family, i)
