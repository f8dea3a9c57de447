# `make test` / `make demo` set everything up on a fresh machine: a virtual environment at .venv
# (or the interpreter given as PYTHON=...), torch, detectron2 and the project, and the system
# packages the tests need (chromium, chromium-driver: apt-get as root or with passwordless sudo,
# else one line naming the command to run, before any test); see tools/setup_env.py.
PYTHON ?=
VENV ?= .venv
PYTEST_ARGS ?=
ifeq ($(strip $(PYTHON)),)
PY := $(VENV)/bin/python
ENV_DEP := $(VENV)/bin/python
else
PY := $(PYTHON)
ENV_DEP :=
endif

.PHONY: env env-system test test-fast lint demo bench gpu-bundle gpu-acceptance clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)

env: $(ENV_DEP)
	$(PY) tools/setup_env.py

# env, and the system packages the tests need (the HTML page is checked in a headless chromium)
env-system: $(ENV_DEP)
	$(PY) tools/setup_env.py --system

test: env-system
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: env-system
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

# ruff: pyflakes, pycodestyle and import order over the whole tree (settings in ruff.toml)
lint: env
	$(PY) -m ruff check .

demo: env-system
	$(PY) tools/demo.py

bench: env
	$(PY) benchmarks/run_bench.py

# the wheels a lent GPU machine (CPython 3.12, torch preinstalled, no network) lacks: gpu_bundle/
gpu-bundle: env
	$(PY) tools/gpu_bundle.py

# on the GPU machine, after the bundle's install line (gpu_bundle/INSTALL.txt)
gpu-acceptance:
	$(PY) benchmarks/gpu_acceptance.py --json gpu_acceptance.json

clean:
	rm -rf $(VENV) demo_output .pytest_cache
