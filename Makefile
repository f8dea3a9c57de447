# `make test` / `make demo` set everything up on a fresh machine: a virtual environment at .venv
# (or the interpreter given as PYTHON=...), torch, detectron2 and the project; see tools/setup_env.py.
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

.PHONY: env test test-fast lint demo bench clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)

env: $(ENV_DEP)
	$(PY) tools/setup_env.py

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: env
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

# ruff: pyflakes, pycodestyle and import order over the whole tree (settings in ruff.toml)
lint: env
	$(PY) -m ruff check .

demo: env
	$(PY) tools/demo.py

bench: env
	$(PY) benchmarks/run_bench.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
