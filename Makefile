# One virtual environment in .venv; `make run` and `make test` install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: install
	$(BIN)/regexp train

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check regexp tests
	$(BIN)/ruff format --check regexp tests

# Not a test: times sequential against stacked training and writes BENCHMARKS.md (~10 min).
bench: install
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
