# One virtual environment in .venv; `make run` and `make test` install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean reproduce reproduce-runs reproduce-baselines

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

# Not a test: times sequential against stacked training and writes BENCHMARKS.md (about 7
# minutes), then the 108-job sweep batched against basic, quiet and with a competing
# process (benchmarks/busy.py, about 4 minutes).
bench: install
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/busy.py --seeds 0,1,2 --append BENCHMARKS.md

# Scardapane et al. 2017 on digits, a synthetic data set with known informative inputs and
# breast_cancer → docs/reproduction.md and docs/figures/. The sweeps write
# outputs/reproduce/<experiment>/ (conf/experiment/scardapane2017*.yaml),
# REPRO_JOBS of them at a time (one per core), on the batched engine (hydra/launcher=batched;
# REPRO_LAUNCHER=basic runs the jobs one by one); resume=true skips jobs already finished
# there, so delete outputs/reproduce to start over. Then the baselines (magnitude pruning,
# SGL fine-tuned, LassoNet's path and refit: the `paper` extra) →
# outputs/reproduce/baselines/ (kept when there), and the document.
REPRO_EXPERIMENTS := scardapane2017_proximal_front scardapane2017_front scardapane2017_proximal \
	scardapane2017_synthetic scardapane2017_sgd_front scardapane2017 \
	scardapane2017_identity_front scardapane2017_breast_cancer
REPRO_LAUNCHER ?= batched
REPRO_JOBS ?= 2
REPRO_ARGS := resume=true $(if $(REPRO_LAUNCHER),hydra/launcher=$(REPRO_LAUNCHER))

reproduce-runs: install
	printf '%s\n' $(REPRO_EXPERIMENTS) | xargs -P $(REPRO_JOBS) -I{} \
		$(BIN)/regexp train -m experiment={} $(REPRO_ARGS)

reproduce-baselines: reproduce-runs
	$(BIN)/python -m pip install --quiet -e ".[paper]" || echo "lassonet did not install: the report leaves LassoNet out"
	$(BIN)/python -m regexp.reproduction.baselines outputs/reproduce

# The wall time of this make invocation, stated in the report's summary.
REPRO_START := $(shell date +%s)
reproduce: reproduce-baselines
	$(BIN)/python -m regexp.reproduction.reproduce outputs/reproduce docs \
		--seconds $$(( $$(date +%s) - $(REPRO_START) ))

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
