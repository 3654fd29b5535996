# HETA Lite server image: CUDA runtime, non-root user, the package installed from this repo.
# Build:  docker build -t heta-lite .            (add --build-arg BAKE_MODEL=1 to bake Qwen2.5-3B in)
# Run:    docker run --gpus all -p 8080:8080 -v heta-cache:/cache heta-lite
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HETA_LITE_HOME=/cache HF_HOME=/cache/huggingface MPLBACKEND=Agg
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 heta && mkdir -p /cache /app && chown heta:heta /cache /app
USER heta
WORKDIR /app
RUN python3 -m venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PY=/app/.venv/bin/python
COPY --chown=heta:heta . /app/src
RUN TORCH=cuda /app/src/scripts/install.sh

ARG BAKE_MODEL=0
RUN if [ "$BAKE_MODEL" = "1" ]; then python -c "from heta_lite.models import load_model; load_model('qwen2.5-3b', device='cpu')"; fi

VOLUME ["/cache"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s CMD curl -fsS http://127.0.0.1:8080/api/v1/health || exit 1
CMD ["python", "/app/src/run.py", "--host", "0.0.0.0", "--port", "8080", "--no-browser"]
