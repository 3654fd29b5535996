"""Shared fixtures: the real offline model (loaded once per session) and tiny random models."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct from the packaged GGUF (converted once to safetensors)."""
    from heta_lite.models import load_model

    return load_model("smollm2-135m", device="cpu")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random Llama with SmolLM2's tokenizer, saved like any local model folder."""
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM

    from heta_lite.models.gguf_convert import converted_folder
    from heta_lite.models.registry import resolve_model_name

    folder = tmp_path_factory.mktemp("tiny-llama")
    src = converted_folder(resolve_model_name("smollm2-135m"))
    for f in src.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, folder / f.name)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      initializer_range=0.2, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return str(folder)


class LiveServer:
    """run.py in a subprocess on a free loopback port; its log is kept for privacy checks."""

    def __init__(self, tmp_path, *args: str):
        import socket
        import subprocess
        import sys
        import time
        from pathlib import Path

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tmp_path) / f"server-{self.port}.log"
        # without PYTEST_* variables: NiceGUI skips starting its server when it thinks it runs under pytest
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")} | {"PYTHONUNBUFFERED": "1"}
        self._fh = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "run.py", "--no-browser", "--port", str(self.port),
                                      "--model", "smollm2-135m", "--cache-dir", "off", *args],
                                     stdout=self._fh, stderr=subprocess.STDOUT, env=env,
                                     cwd=Path(__file__).resolve().parents[1])
        import httpx

        for _ in range(300):
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("server did not become healthy: " + self.log_path.read_text()[-2000:])

    def log(self) -> str:
        self._fh.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._fh.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("srv"))
    yield srv
    srv.stop()
