# dlserve image: the API and the training worker (same image, different command).
#   CPU (default):  docker build -t dlserve .
#   CUDA:           docker build --build-arg VARIANT=gpu -t dlserve:gpu .
# VARIANT=gpu starts from NVIDIA's CUDA + cuDNN runtime image and installs onnxruntime-gpu and CUDA
# torch. The project is installed by `make install`, exactly as on a laptop.
ARG VARIANT=cpu

FROM python:3.11-slim-bookworm AS base-cpu
# torch==2.13.0 from PyPI is the CUDA build with gigabytes of NVIDIA wheels; PyTorch's CPU index has
# 2.13.0+cpu, which sorts above it (PEP 440 local version), so pip takes the CPU build.
ENV EXTRAS=cpu,train \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make curl \
    && rm -rf /var/lib/apt/lists/*

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04 AS base-gpu
ENV EXTRAS=gpu,train DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv make curl \
    && rm -rf /var/lib/apt/lists/*

# hadolint ignore=DL3006
FROM base-${VARIANT}
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DLSERVE_HOME=/data

# Dependencies first (cached while only the code changes), then the code itself.
COPY pyproject.toml README.md Makefile ./
COPY app/__init__.py app/__init__.py
COPY models/__init__.py models/__init__.py
COPY workers/__init__.py workers/__init__.py
RUN make install VENV=/opt/venv EXTRAS="${EXTRAS}"
COPY app app
COPY models models
COPY workers workers
COPY migrations migrations

RUN useradd --create-home --uid 1000 dlserve && mkdir -p /data && chown 1000 /data
USER 1000
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8000/readyz"]
CMD ["dlserve", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
