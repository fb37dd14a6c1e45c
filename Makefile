# One virtual environment in .venv; `make run` and `make test` install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean reproduce reproduce-runs

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

# Every Python file: the package, the Hydra plugin, the benchmark and the tests; then the
# import contracts of pyproject.toml ([tool.importlinter]): imports run one way.
LINTED := regexp hydra_plugins benchmarks tests
lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports

# Not a test: times sequential against stacked training and writes BENCHMARKS.md (about 7 minutes).
bench: install
	$(BIN)/python benchmarks/bench.py

# Scardapane et al. 2017 on digits → docs/reproduction.md and docs/figures/.
# The sweeps write outputs/reproduce/<experiment>/ (see conf/experiment/scardapane2017*.yaml);
# resume=true skips jobs already finished there, so delete outputs/reproduce to start over.
# The sweeps run on the batched engine (hydra/launcher=batched); REPRO_LAUNCHER=basic runs them one by one.
REPRO_EXPERIMENTS := scardapane2017 scardapane2017_proximal scardapane2017_front
REPRO_LAUNCHER ?= batched
REPRO_ARGS := resume=true $(if $(REPRO_LAUNCHER),hydra/launcher=$(REPRO_LAUNCHER))

reproduce-runs: install
	for e in $(REPRO_EXPERIMENTS); do \
		$(BIN)/regexp train -m experiment=$$e $(REPRO_ARGS) || exit 1; \
	done

reproduce: reproduce-runs
	$(BIN)/python -m regexp.paper.reproduce outputs/reproduce docs

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
