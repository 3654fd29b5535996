"""What the app holds for its lifetime: the loaded models (the one global registry), the job
queue and the cache.

Several models can be loaded at once, keyed by (model name, quantization mode), one of them
the *primary* that requests use when they name none. At most `max_models` stay loaded: loading
one more unloads the least recently used non-primary model. Loads run in background threads,
so the page and the API keep answering (with the load's state) while weights arrive. Users pick
among loaded models; loading, switching and unloading are admin actions (gui/serving/admin_routes.py
and the page's models panel). `models()` is the admin's view (paths, load errors); anyone else gets
`public_models()` (issue #18 item 9).
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field

from heta_lite.errors import HetaError, ModelNotLoaded
from heta_lite.jobs import JobQueue

log = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "failed"
#: what anyone but an admin learns of a failed load (its error quotes paths and exception text)
FAILED_PUBLIC = "failed to load; an admin can see why in /api/v1/admin/models"


def public_name(name: str) -> str:
    """A model's name as anyone may see it: a local folder as 'local:<folder name>', never its path
    (heta_lite.models.loader.public_name, imported late: the loader pulls in torch)."""
    from heta_lite.models.loader import public_name as scrub

    return scrub(name)


@dataclass
class ModelSlot:
    """One (model, quantization) entry of the registry and its load state."""

    name: str
    quant: str
    state: str = LOADING
    lm: object | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    load_seconds: float | None = None
    last_used: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.quant)

    def describe(self, primary: bool = False, public: bool = False) -> dict:
        """The admin's view (full name, the load error), or with `public` what anyone may see: the
        model's public name (a folder as 'local:<name>') and, for a failed load, only that it failed."""
        error = (FAILED_PUBLIC if self.state == FAILED else None) if public else self.error
        d = {"model": public_name(self.name) if public else self.name, "quant": self.quant, "state": self.state,
             "primary": primary, "error": error, "load_seconds": self.load_seconds}
        if self.lm is not None:
            d["details"] = self.lm.describe()
        return d


def _canonical_quant(quant: str | None) -> str:
    from heta_lite.quantization.modes import QuantMode

    return QuantMode.parse(quant).name


def _resolve_auto(name: str) -> str:
    """'auto' names the default model of this machine, so the registry lists what really loads."""
    if name != "auto":
        return name
    import torch

    from heta_lite.models.catalogue import default_model_name

    return default_model_name(torch.cuda.is_available())


@dataclass
class AppState:
    model_name: str = "auto"
    quantization: str = "none"
    default_quality: str = "fast"
    queue: JobQueue = field(default_factory=JobQueue)
    cache: object | None = None
    metrics: object | None = None
    max_models: int = 2
    device: str | None = None
    desktop: bool = False  # bound to loopback: the GUI lets a direct local user switch models without a token
    limiter: object | None = None  # the API's per-client RateLimiter, once the API is registered (the page uses it too)
    client_of: object | None = None  # the API's request -> client name (the same key for page and API jobs)
    _slots: dict = field(default_factory=dict)
    _primary: tuple[str, str] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _threads: list = field(default_factory=list)

    # ---- the primary model (what requests use when they name none) ---------------------------
    @property
    def primary_slot(self) -> ModelSlot | None:
        with self._lock:
            return self._slots.get(self._primary) if self._primary else None

    @property
    def lm(self):
        slot = self.primary_slot
        return slot.lm if slot is not None and slot.state == READY else None

    @lm.setter
    def lm(self, lm) -> None:
        """Install an already-loaded model as the primary (tests, notebooks)."""
        key = (_resolve_auto(self.model_name), getattr(lm, "quantization", "none"))
        with self._lock:
            self._slots[key] = ModelSlot(*key, state=READY, lm=lm, load_seconds=getattr(lm, "load_seconds", None))
            self._primary = key

    @property
    def load_error(self) -> str | None:
        slot = self.primary_slot
        return slot.error if slot is not None else None

    @property
    def public_load_error(self) -> str | None:
        """`load_error` for anyone: on a desktop install (its own user) the error itself, else the
        generic sentence (the page's header and panels should show this one)."""
        error = self.load_error
        return error if error is None or self.desktop else f"The model {FAILED_PUBLIC}."

    @property
    def ready(self) -> bool:
        return self.lm is not None

    # ---- loading --------------------------------------------------------------------------
    def start_loading(self, device: str | None = None) -> None:
        """Load the configured primary model in the background (app start)."""
        self.device = device if device is not None else self.device
        self.load(self.model_name, self.quantization, primary=True)

    def load(self, name: str, quant: str = "none", primary: bool = False) -> ModelSlot:
        """Start loading (name, quant) in a background thread, or return it if present. With
        `primary`, it becomes the primary now (requests wait for it: 503 model_loading)."""
        quant = _canonical_quant(quant)
        name = _resolve_auto(name)
        key = (name, quant)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or slot.state == FAILED:
                slot = ModelSlot(name, quant)
                self._slots[key] = slot
                self._start_thread(slot)
            if primary:
                self._primary = key
            slot.last_used = time.monotonic()
            evicted = self._evict()
        if evicted:
            self._free()  # outside the lock: lookups for loaded models never wait on gc
        return slot

    def reload(self) -> ModelSlot:
        """Load the primary model again from disk (e.g. after its folder changed)."""
        with self._lock:
            if self._primary is None:
                raise ModelNotLoaded("No primary model to reload.")
            slot = ModelSlot(*self._primary)
            old = self._slots[self._primary]
            self._slots[self._primary] = slot
            self._start_thread(slot)
        old.lm = None  # running jobs keep their own reference until they finish
        del old
        self._free()
        return slot

    def unload(self, name: str, quant: str = "none") -> None:
        key = (_resolve_auto(name), _canonical_quant(quant))
        with self._lock:
            if key not in self._slots:
                raise ModelNotLoaded(f"'{name}' ({key[1]}) is not loaded.")
            if key == self._primary:
                raise HetaError("The primary model cannot be unloaded; make another model primary first.")
            self._slots.pop(key).lm = None
        self._free()

    def _start_thread(self, slot: ModelSlot) -> None:
        def run() -> None:
            from heta_lite.models import load_model

            t0 = time.perf_counter()
            try:
                lm = load_model(slot.name, device=self.device, quantization=slot.quant)
            except HetaError as err:
                slot.error, slot.state = str(err), FAILED
                return
            except Exception as err:  # noqa: BLE001 - shown on the page and in the API, not a crash
                log.exception("model load failed")
                slot.error, slot.state = f"Could not load the model ({type(err).__name__}: {err}).", FAILED
                return
            with self._lock:
                current = self._slots.get(slot.key) is slot
                if current:
                    slot.lm, slot.load_seconds, slot.state = lm, time.perf_counter() - t0, READY
            if not current:  # unloaded, evicted or replaced while loading: drop the weights
                del lm
                self._free()

        t = threading.Thread(target=run, name=f"model-loader-{slot.name}-{slot.quant}", daemon=True)
        self._threads = [th for th in self._threads if th.is_alive()] + [t]
        t.start()

    def _evict(self) -> int:
        """Drop least recently used non-primary models beyond max_models (lock held; the caller
        frees memory after releasing it). Returns how many went."""
        evicted = 0
        while len(self._slots) > max(1, self.max_models):
            victims = sorted((s for k, s in self._slots.items() if k != self._primary), key=lambda s: s.last_used)
            if not victims:
                break
            log.info("unloading a model to stay within max_models", extra={"fields": {"quant": victims[0].quant}})
            self._slots.pop(victims[0].key).lm = None
            evicted += 1
        return evicted

    @staticmethod
    def _free() -> None:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def wait_loaded(self, timeout: float | None = None) -> None:
        """Wait for every load in flight (tests, startup scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in list(self._threads):
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # ---- lookup ---------------------------------------------------------------------------
    def get(self, name: str | None = None, quant: str | None = None):
        """The LoadedModel for (name, quant), defaulting to the primary's; raises ModelNotLoaded."""
        primary = self._primary or (_resolve_auto(self.model_name), _canonical_quant(self.quantization))
        key = (_resolve_auto(name) if name else primary[0], _canonical_quant(quant) if quant is not None else primary[1])
        with self._lock:
            slot = self._slots.get(key)
        if slot is None or slot.state != READY:  # the message goes to anyone: public names, no load error
            what = f"'{public_name(key[0])}' ({key[1]})"
            if slot is not None and slot.state == LOADING:
                raise ModelNotLoaded(f"{what} is still loading; try again in a moment.", state=LOADING)
            if slot is not None and slot.state == FAILED:
                raise ModelNotLoaded(f"{what} {FAILED_PUBLIC}.", state=FAILED)
            loaded = ", ".join(f"{s['model']} ({s['quant']})" for s in self.public_models()
                               if s["state"] == READY) or "none"
            raise ModelNotLoaded(f"{what} is not loaded (loaded: {loaded}); an admin can load it.")
        slot.last_used = time.monotonic()
        return slot.lm

    # ---- jobs ---------------------------------------------------------------------------
    def submit(self, fn, texts=(), **kwargs):
        """Queue `fn` (JobQueue.submit's keywords) with `texts` (its prompts) kept secret from every
        log line until the job ends: async API jobs and the page's outlive any request."""
        from .serving.telemetry import JOB_TEXT  # not at the top: gui.serving imports this module

        return JOB_TEXT.submit(self.queue.submit, fn, tuple(texts), **kwargs)

    def models(self) -> list[dict]:
        """The admin's view of the registry (full names and load errors)."""
        with self._lock:
            return [s.describe(primary=(k == self._primary)) for k, s in self._slots.items()]

    def public_models(self) -> list[dict]:
        """What anyone may see of the registry: public names, and only that a load failed."""
        with self._lock:
            return [s.describe(primary=(k == self._primary), public=True) for k, s in self._slots.items()]

    def ready_modes(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, s in self._slots.items() if s.state == READY]
