# HETA Lite server image: non-root user, the package installed from this repo through scripts/install.sh.
# Build:  docker build -t heta-lite .            (add --build-arg BAKE_MODEL=1 to bake Qwen2.5-3B in)
# Run:    docker run --gpus all -p 8080:8080 -v heta-cache:/cache heta-lite
#
# BASE and TORCH pick the flavour. Users get the defaults: the CUDA runtime and PyPI's CUDA torch.
# CI (scripts/docker_ci.sh) builds the same file on a CPU machine with no registry of images:
#   --build-arg BASE=heta-debian-base   a Debian bookworm image made locally by debootstrap
#   --build-arg TORCH=cpu               torch's CPU build ...
#   --build-arg TORCH_FIND_LINKS=URL    ... taken from URL (pip --find-links): the CI serves the
#       machine's CPU wheel on a loopback port for the length of the build. The wheel is never in
#       the build context or a layer (COPY would keep its ~190 MB in the image even if deleted),
#       and install.sh then insists on the +cpu build instead of falling back to PyPI's CUDA one.
ARG BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE}
ARG TORCH=cuda
ARG TORCH_FIND_LINKS=

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HETA_LITE_HOME=/cache HF_HOME=/cache/huggingface MPLBACKEND=Agg HETA_PORT=8080
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip curl \
    && rm -rf /var/lib/apt/lists/*
# Ubuntu 24.04 images (the CUDA base) already own uid 1000 as user `ubuntu`: free it for `heta`.
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && useradd --create-home --uid 1000 heta && mkdir -p /cache/models /app && chown -R heta:heta /cache /app
USER heta
WORKDIR /app
RUN python3 -m venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PY=/app/.venv/bin/python
# Dependencies first, from the files that name them only: a code change reuses this (large) layer.
COPY --chown=heta:heta pyproject.toml /app/src/
COPY --chown=heta:heta requirements/ /app/src/requirements/
COPY --chown=heta:heta scripts/install.sh /app/src/scripts/
RUN /app/src/scripts/install.sh --deps-only
COPY --chown=heta:heta . /app/src
RUN /app/src/scripts/install.sh

ARG BAKE_MODEL=0
RUN if [ "$BAKE_MODEL" = "1" ]; then python -c "from heta_lite.models import load_model; load_model('qwen2.5-3b', device='cpu')"; fi

VOLUME ["/cache"]
EXPOSE 8080
# HETA_PORT: the port the health check asks; set it (docker run -e) when the command uses another --port.
# The start period covers a first start's model preparation (SmolLM2's GGUF conversion: ~40-90 s on 2 cores).
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s CMD curl -fsS "http://127.0.0.1:${HETA_PORT}/api/v1/health" || exit 1
CMD ["python", "/app/src/run.py", "--host", "0.0.0.0", "--port", "8080", "--no-browser"]
