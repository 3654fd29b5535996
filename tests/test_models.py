"""Model registry rules and clear failures for models that can't be had."""
import json

import pytest

from heta_lite.errors import InputError, ModelUnavailableError, UnsupportedModelError
from heta_lite.models import load_model
from heta_lite.models.registry import default_model_name, resolve_model_name


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
