"""Moved to heta_lite.models.catalogue; this re-export remains for gui/, tests/conftest.py and tests/test_eval_cli.py."""
from .catalogue import (GPU_DEFAULT, OFFLINE_DEFAULT, SHORT_NAMES, ModelSource, SourceKind,  # noqa: F401
                        cache_home, default_model_name, resolve_model_name)
