"""Shared fixtures: the real offline model (loaded once per session) and tiny random models, a
live server, and a session that writes nothing into the repository or the user's home.

Where the session writes (set up in `pytest_configure`, before any test module is imported, and
inherited by every subprocess: CLIs, run.py, Caddy):
- HETA_LITE_HOME is a fresh temporary folder, so the explanation cache (HETA_LITE_CACHE, set too)
  starts empty: a rerun can't pass on cached reports from an earlier run or from the user's app.
- Its `models` entry links to the user's converted-model folder ($HETA_LITE_HOME or
  ~/.cache/heta-lite, `models/`), the one exception: converting the packaged GGUF costs ~50 s of
  CPU (94 s wall measured on a busy 2-core machine) and 0.5 GB, and the result is a pure function
  of the installed wheel that the app itself writes on first start. Set HETA_TEST_PRIVATE_MODELS=1
  to convert into the session folder instead (fully hermetic, that cost every session).
- Matplotlib's config/font cache (MPLCONFIGDIR, ~1.5 s to rebuild) and NiceGUI's storage folder
  (NICEGUI_STORAGE_PATH, else `.nicegui/` in the working directory, the repository) go there too.
- Third-party programs that write into HOME (Caddy, Chromium) get a private one: `private_home_env`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
_SESSION: dict = {}
# fixtures that load the real offline model: a test using one is slow whatever its module says
REAL_MODEL_FIXTURES = ("smollm", "live_server")


def _user_models_folder() -> Path:
    """heta_lite.models.catalogue.cache_home() / "models", read before the session redirects
    HETA_LITE_HOME. The rule is repeated, not imported: importing heta_lite here, while pytest
    configures, would turn any import error into an INTERNALERROR for every test (a test checks
    that the two agree)."""
    return Path(os.environ.get("HETA_LITE_HOME") or Path.home() / ".cache" / "heta-lite") / "models"


def pytest_configure(config):
    root = Path(tempfile.mkdtemp(prefix="heta-test-session-"))
    home = root / "heta-home"
    home.mkdir()
    if os.environ.get("HETA_TEST_PRIVATE_MODELS") != "1":
        models = _user_models_folder()
        models.mkdir(parents=True, exist_ok=True)
        (home / "models").symlink_to(models, target_is_directory=True)
    env = {"HETA_LITE_HOME": str(home), "HETA_LITE_CACHE": str(home / "cache"),
           "MPLCONFIGDIR": str(root / "matplotlib"), "NICEGUI_STORAGE_PATH": str(root / "nicegui")}
    _SESSION.update(root=root, saved={k: os.environ.get(k) for k in env})
    os.environ.update(env)


def pytest_unconfigure(config):
    for k, v in _SESSION.get("saved", {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if "root" in _SESSION:
        shutil.rmtree(_SESSION["root"], ignore_errors=True)  # never follows the models link


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m "not slow"` must see the added mark
def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in REAL_MODEL_FIXTURES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def session_home() -> Path:
    """The session's HETA_LITE_HOME (a temporary folder; see the module docstring)."""
    return Path(os.environ["HETA_LITE_HOME"])


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct from the packaged GGUF (converted once to safetensors)."""
    from heta_lite.models import load_model

    return load_model("smollm2-135m", device="cpu")


def _smollm_tokenizer_into(folder: Path) -> None:
    """SmolLM2's tokenizer files: copied from the converted model when there is one, else read from
    the packaged GGUF alone (~10 s; converting the whole model would load its weights too)."""
    from heta_lite.models.gguf_convert import packaged_gguf_path
    from heta_lite.models.catalogue import cache_home, resolve_model_name

    source = resolve_model_name("smollm2-135m")
    converted = cache_home() / "models" / source.name
    if (converted / "config.json").exists() and any(converted.glob("*.safetensors")):
        for f in converted.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
                shutil.copy(f, folder / f.name)
        return
    from transformers import AutoTokenizer

    gguf = packaged_gguf_path(source)
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random Llama with SmolLM2's tokenizer, saved like any local model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    _smollm_tokenizer_into(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      initializer_range=0.2, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return str(folder)


def private_home_env(folder) -> dict:
    """os.environ with HOME and the XDG folders inside `folder`, for third-party programs that keep
    state in the user's home (Caddy's PKI under ~/.step and ~/.local/share, Chromium's crash reports
    and dconf under ~/.config and ~/.cache)."""
    folder = Path(folder)
    env = {**os.environ, "HOME": str(folder), "XDG_CONFIG_HOME": str(folder / ".config"),
           "XDG_CACHE_HOME": str(folder / ".cache"), "XDG_DATA_HOME": str(folder / ".local" / "share")}
    for k in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        Path(env[k]).mkdir(parents=True, exist_ok=True)
    return env


def listening_socket(host: str = "127.0.0.1"):
    """A bound, listening TCP socket on a port the kernel picked. Handed to a server process
    (run.py --fd), the port is never released between choosing it and serving on it, so no
    other process can take it meanwhile (unlike bind, close, then start a server on the number)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


class LiveServer:
    """run.py in a subprocess on a loopback port it inherits already bound (--fd); its log is
    kept for privacy checks. `args` are extra run.py options (limits, ...)."""

    def __init__(self, tmp_path, *args: str, startup_s: float = 300.0):
        import subprocess
        import sys

        sock = listening_socket()
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tmp_path) / f"server-{self.port}.log"
        # without PYTEST_* variables: NiceGUI skips starting its server when it thinks it runs under pytest
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")} | {"PYTHONUNBUFFERED": "1"}
        self._fh = open(self.log_path, "w")
        try:
            self.proc = subprocess.Popen([sys.executable, "run.py", "--no-browser", "--fd", str(sock.fileno()),
                                          "--model", "smollm2-135m", "--cache-dir", "off", *args],
                                         stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                         pass_fds=[sock.fileno()])
        finally:
            sock.close()  # the server has its own copy of the socket
        try:
            self._wait_healthy(startup_s)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, startup_s: float) -> None:
        """Poll /health until the model is loaded (deadline `startup_s`). Requests made before the
        server runs wait in the socket's backlog, so each may take a while to be answered."""
        import time

        import httpx

        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): " + self.log()[-2000:])
            try:
                r = httpx.get(self.url + "/api/v1/health", timeout=30)
                if r.status_code == 200:
                    return
                if r.json().get("status") == "error":
                    raise RuntimeError("the model failed to load: " + self.log()[-2000:])
            except httpx.HTTPError:
                pass
            time.sleep(0.5)  # poll interval, not synchronisation: the loop ends on the server's answer
        raise RuntimeError("server did not become healthy: " + self.log()[-2000:])

    def log(self) -> str:
        self._fh.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._fh.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("srv"))
    yield srv
    srv.stop()
