"""The HTTP side of the app: the REST API (APIRouters), rate limits, telemetry and the one
error-to-HTTP mapping. `register_api(app, state, limits)` wires it into the NiceGUI app."""
from .api import register_api

__all__ = ["register_api"]
