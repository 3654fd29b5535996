"""HETA in one package (spec 'HETA method'): the method and its ablations (method.py), gate M
(gate.py), curvature S (curvature.py), information gain I (information.py), their combination
(combine.py), the quality presets (presets.py) and the cost model that plans a run (cost.py)."""
from . import method  # noqa: F401  (registers heta, heta-M, heta-S, heta-I)
