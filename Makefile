# The two set-up commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= test,video,dask,docs
DEMO_ARGS ?=

.PHONY: install demo test test-all docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hadasklearn benchmark --out demo_results $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

docs: $(STAMP)
	$(MAKE) -C docs html SPHINXBUILD=$(abspath $(BIN))/sphinx-build

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_dmarkers.py

clean:
	rm -rf build dist *.egg-info docs/_build docs/auto_examples docs/generated docs/sg_execution_times.rst demo_results
