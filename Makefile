# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# real data sets live beside the checkout unless PIPEKIT_DATA says otherwise
PIPEKIT_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export PIPEKIT_DATA
export PIPEKIT_PLOTS ?= $(abspath out/plots)
export PIPEKIT_CACHE ?= $(abspath .pipekit_cache)

.PHONY: install demo test bench lint clean

install: $(STAMP)

# torch is pinned through constraints.txt (the CPU build); pyproject.toml keeps a range. A change to
# pyproject.toml or setup.py (dependencies, the dev extra, packages) installs again.
$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) recipes/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check pipekit tests recipes benchmarks

clean:
	rm -rf $(VENV) out .pipekit_cache bench_results .pytest_cache
