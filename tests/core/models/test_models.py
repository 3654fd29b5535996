"""Model catalogue rules and clear failures for models that can't be had."""
import json

import pytest

from heta_lite.errors import InputError, ModelUnavailableError, UnsupportedModelError
from heta_lite.models import load_model
from heta_lite.models.catalogue import default_model_name, resolve_model_name


def test_auto_picks_qwen_on_gpu_and_smollm_on_cpu():
    assert default_model_name(cuda_available=True) == "qwen2.5-3b"
    assert default_model_name(cuda_available=False) == "smollm2-135m"


def test_short_names_hub_ids_and_folders(tmp_path):
    assert resolve_model_name("qwen2.5-3b").location == "Qwen/Qwen2.5-3B-Instruct"
    assert resolve_model_name("smollm2-135m").kind == "gguf-package"
    assert resolve_model_name("org/some-model").kind == "hub"
    assert resolve_model_name(str(tmp_path)).kind == "local"


def test_unsupported_architecture_is_one_sentence(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(UnsupportedModelError, match="does not support"):
        load_model(str(tmp_path))


def test_uncached_hub_model_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="smollm2-135m"):
        load_model("qwen2.5-0.5b")


def test_bad_quantization_mode():
    with pytest.raises(InputError, match="quantization mode '3bit'"):
        load_model("smollm2-135m", quantization="3bit")


# ---- attention_implementation: SDPA where the model allows it, eager otherwise ----------------------

def test_attention_implementation_switches_and_restores():
    from heta_lite.models import attention_implementation
    from tests.reference.tiny import tiny_llama

    model = tiny_llama()
    with attention_implementation(model, "sdpa"):
        assert model.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "eager"


def test_gemma2_has_no_sdpa_and_stays_eager():
    """transformers refuses SDPA for Gemma-2 (attention soft-capping): the SDPA-preferring passes
    (masked copies for I, generation, faithfulness perturbations) must run eager instead of raising."""
    import torch

    from heta_lite.models import attention_implementation
    from tests.reference.tiny import tiny_gemma2

    model = tiny_gemma2()
    ids = torch.arange(4, 12)[None]
    with torch.no_grad():
        before = model(ids).logits
        with attention_implementation(model, "sdpa"):
            assert model.config._attn_implementation == "eager"
            inside = model(ids).logits
    assert model.config._attn_implementation == "eager"
    assert torch.equal(before, inside)
    with pytest.raises(KeyError):  # the pass's own errors still come through
        with attention_implementation(model, "sdpa"):
            raise KeyError("from the pass")
    assert model.config._attn_implementation == "eager"


def test_a_failed_switch_to_eager_still_raises():
    """Only SDPA is optional: the gate and HVPs need eager, so failing to get it is an error."""
    from types import SimpleNamespace

    from heta_lite.models import attention_implementation

    class NoEager:
        config = SimpleNamespace(_attn_implementation="sdpa")

        def set_attn_implementation(self, impl):
            raise ValueError(f"no {impl} here")

    with pytest.raises(ValueError, match="no eager here"):
        with attention_implementation(NoEager(), "eager"):
            pass
