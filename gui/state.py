"""What the app holds for its lifetime: the loaded model (the one global registry), the job
queue and the cache. The model loads in a background thread so the page can say so."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from heta_lite.jobs import JobQueue

log = logging.getLogger(__name__)


@dataclass
class AppState:
    model_name: str = "auto"
    quantization: str = "none"
    default_quality: str = "fast"
    lm: object | None = None
    load_error: str | None = None
    queue: JobQueue = field(default_factory=JobQueue)
    cache: object | None = None
    last_peak: dict | None = None
    metrics: object | None = None
    _loading: threading.Thread | None = None

    def start_loading(self, device: str | None = None) -> None:
        def load() -> None:
            from heta_lite.errors import HetaError
            from heta_lite.models import load_model

            try:
                self.lm = load_model(self.model_name, device=device, quantization=self.quantization)
            except HetaError as err:
                self.load_error = str(err)
            except Exception as err:  # noqa: BLE001 - shown on the page, not a crash
                log.exception("model load failed")
                self.load_error = f"Could not load the model ({type(err).__name__}: {err})."

        self._loading = threading.Thread(target=load, name="model-loader", daemon=True)
        self._loading.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
        if self._loading is not None:
            self._loading.join(timeout)

    @property
    def ready(self) -> bool:
        return self.lm is not None
