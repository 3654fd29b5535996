"""Data files shipped with the package: thresholds and fitted coefficients measured by the
experiments (anomaly_thresholds.json, failure_risk.json); `shipped_json` reads one."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=None)
def shipped_json(name: str) -> dict[str, Any]:
    """The parsed file `name` of this package, or {} when it has not been measured (not shipped)."""
    try:
        return json.loads(resources.files(__name__).joinpath(name).read_text())
    except FileNotFoundError:
        return {}
