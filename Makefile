# One virtual environment in .venv. `make run` installs the runtime dependencies only;
# `make test` and `make lint` add the `dev` extra (pytest, ruff, the plugins the tests drive).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Torch: the CPU build by default, from PyTorch's CPU wheel index where it answers within
# TORCH_PROBE_SECONDS, from the default index otherwise (on Linux x86 PyPI's torch is the
# CUDA build: a warning says so). TORCH=cuda installs the CUDA build from the default index.
# TORCH_VERSION is the release the tests run against (pyproject.toml's range).
TORCH ?= cpu
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PROBE_SECONDS ?= 5
TORCH_STAMP := $(VENV)/.torch-$(TORCH)
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: install install-dev run test test-fast lint check-install bench clean \
	reproduce reproduce-runs reproduce-baselines

install: $(RUNTIME)
install-dev: $(DEV)

# A shell command that prints pip's index options for torch: the CPU index if it answers
# within TORCH_PROBE_SECONDS, nothing otherwise (then pip's default index).
TORCH_INDEX := $(PYTHON) -c "import urllib.request as u; \
	u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=$(TORCH_PROBE_SECONDS))" >/dev/null 2>&1 \
	&& echo --index-url $(TORCH_CPU_INDEX) --extra-index-url https://pypi.org/simple

$(TORCH_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ "$(TORCH)" = cuda ]; then \
		echo "torch $(TORCH_VERSION): the CUDA build from the default index"; \
		$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION); \
	elif index=$$($(TORCH_INDEX)); then \
		echo "torch $(TORCH_VERSION): the CPU build from $(TORCH_CPU_INDEX)"; \
		$(BIN)/python -m pip install --quiet $$index torch==$(TORCH_VERSION); \
	else \
		echo "torch $(TORCH_VERSION): $(TORCH_CPU_INDEX) did not answer within" \
			"$(TORCH_PROBE_SECONDS) s; installing from the default index (on Linux x86," \
			"PyPI's wheel is the CUDA build: about 15 nvidia-* packages more)"; \
		$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION); \
	fi
	rm -f $(VENV)/.torch-*
	touch $@

$(RUNTIME): pyproject.toml $(TORCH_STAMP)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

run: install
	$(BIN)/regexp train

test: install-dev
	$(BIN)/python -m pytest -q

# The unit tier: every test but the end-to-end runs marked `slow` (under a minute on 2 cores).
test-fast: install-dev
	$(BIN)/python -m pytest -q -m "not slow"

# What a fresh machine would download for `make run` and for `make test`: pip's resolution
# (`pip install --dry-run --report`, nothing installed), summarized by .ci/install_report.py.
check-install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@index=$$([ "$(TORCH)" = cuda ] || $(TORCH_INDEX)); \
	for what in runtime dev; do \
		target=$$([ $$what = dev ] && echo ".[dev]" || echo .); \
		$(BIN)/python -m pip install --quiet --dry-run --ignore-installed $$index \
			--report $(VENV)/report-$$what.json torch==$(TORCH_VERSION) -e "$$target" || exit 1; \
	done
	$(BIN)/python .ci/install_report.py $(VENV)/report-runtime.json $(VENV)/report-dev.json

# Every Python file: the package, the Hydra plugin, the benchmark and the tests; then the
# import contracts of pyproject.toml ([tool.importlinter]): imports run one way; then deptry:
# every imported package declared, every declared one used ([tool.deptry]).
LINTED := regexp hydra_plugins benchmarks tests
lint: install-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports
	$(BIN)/deptry .

# Not a test: times sequential against stacked training and writes BENCHMARKS.md (about 7
# minutes), then the 108-job sweep batched against basic, quiet and with a competing
# process (benchmarks/busy.py, about 4 minutes), then conv nets and compression
# (benchmarks/conv.py: the default run compressed, the 27-job conv sweep batched against
# basic, SGL's channels over 5 seeds; about 10 minutes on 2 cores), appended.
bench: install-dev
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/busy.py --seeds 0,1,2 --append BENCHMARKS.md
	$(BIN)/python benchmarks/conv.py --append BENCHMARKS.md

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
	scardapane2017_identity_front scardapane2017_breast_cancer scardapane2017_input_front \
	scardapane2017_synthetic_input
REPRO_LAUNCHER ?= batched
REPRO_JOBS ?= 2
REPRO_ARGS := resume=true $(if $(REPRO_LAUNCHER),hydra/launcher=$(REPRO_LAUNCHER))

reproduce-runs: install
	printf '%s\n' $(REPRO_EXPERIMENTS) | xargs -P $(REPRO_JOBS) -I{} \
		$(BIN)/regexp train -m experiment={} $(REPRO_ARGS)

reproduce-baselines: reproduce-runs
	$(BIN)/python -m pip install --quiet -e ".[paper]" || echo "lassonet did not install: the report leaves LassoNet out"
	$(BIN)/python -m regexp.reproduction.baselines outputs/reproduce

# The wall time of this make invocation, stated in the report's summary, and whether it
# started from an empty outputs/reproduce (both read when make starts).
REPRO_START := $(shell date +%s)
REPRO_FRESH := $(if $(wildcard outputs/reproduce),,--fresh)
reproduce: reproduce-baselines
	$(BIN)/python -m regexp.reproduction.reproduce outputs/reproduce docs \
		--seconds $$(( $$(date +%s) - $(REPRO_START) )) $(REPRO_FRESH)

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
