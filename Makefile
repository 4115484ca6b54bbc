# Set-up and the two commands the README shows: `make run` and `make test`.
# Every target is idempotent: the virtual environment is built once (stamp files), and a
# second call only re-checks the stamps.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamps
TABLE ?= table3
ARGS ?=

.PHONY: install tools run test lint clean-venv

install: $(STAMP)/suite

$(STAMP)/base:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade 'pip<25' 'setuptools<70' wheel ninja
	mkdir -p $(STAMP) && touch $@

# torch must be pinned (the local CPU wheel); mmcv 2.1.0 has no wheel for torch 2.13 and is
# built from source with its CPU ops (about 10 minutes on 2 cores, cached by pip afterwards).
$(STAMP)/mmcv: $(STAMP)/base
	$(BIN)/pip install torch==2.13.0 numpy
	$(BIN)/pip install 'setuptools<70'
	MMCV_WITH_OPS=1 MAX_JOBS=2 $(BIN)/pip install --no-build-isolation mmcv==2.1.0
	touch $@

$(STAMP)/suite: $(STAMP)/mmcv pyproject.toml
	$(BIN)/pip install --no-build-isolation -e '.[dev]'
	touch $@

# The main job: the default table on the embedded smoke profile (synthetic data, CPU,
# local executor, W&B offline).
# The report is written even when a cell failed (it lists what failed); the exit code is run's.
run: install
	$(BIN)/python -m suite run $(TABLE) $(ARGS); status=$$?; \
	$(BIN)/python -m suite report $(TABLE) --format md,tex,png,html; exit $$status

# Unit, integration and end-to-end tests (pdflatex and headless Chromium for the reports),
# then the SLURM tier on a single-node cluster started on this machine.
test: install tools
	$(BIN)/python -m pytest -m "not slurm" $(ARGS)
	bash slurm/test-tier.sh

# Debian packages the report tests need (texlive, chromium); quick when already installed.
tools:
	bash reports/install-tools.sh

lint: install
	$(BIN)/ruff check suite baselines tests experiments benchmarks

clean-venv:
	rm -rf $(VENV)
