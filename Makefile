# dp_leakage: every target sets itself up from scratch in .venv (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Notebooks run with their own folder as working directory: make the data root absolute.
ifdef DP_LEAKAGE_DATA
export DP_LEAKAGE_DATA := $(abspath $(DP_LEAKAGE_DATA))
endif

.PHONY: venv demo test export clean-nbs bench site results check-site

venv: $(STAMP)

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch first, exactly pinned: pip takes these builds from this machine's disk
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

export: $(STAMP)
	$(BIN)/nbdev_export

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

# The demo's records go to runs/_demo (folders of runs/ starting with _ are never read by `make results`).
demo: $(STAMP)
	$(BIN)/dp_leakage_demo --out runs/_demo

# The library must be what the notebooks export; then every notebook runs as a test (slow cells skipped), each
# notebook's start and end printed as it happens. Tests write to temporary folders, never to runs/train or runs/attack.
test: $(STAMP)
	rm -rf .export-check && cp -r dp_leakage .export-check
	$(BIN)/nbdev_export
	if ! diff -r -q -x __pycache__ .export-check dp_leakage; then \
	  rm -rf .export-check; echo "nbdev_export changed dp_leakage/: run nbdev_export and commit the library"; exit 1; fi
	rm -rf .export-check
	n=$$(find nbs -name '*.ipynb' -not -name '_*' -not -path '*/.ipynb_checkpoints/*' | wc -l); \
	echo "nbdev_test: $$n notebooks on 2 workers (slow cells skipped)"; \
	if PYTHONUNBUFFERED=1 $(BIN)/nbdev_test --n_workers 2 --timing --do_print 2>&1 | tee .nbdev_test.log; then \
	  echo "nbdev_test: $$n passed, 0 failed"; \
	else f=$$(grep -c '^	.*\.ipynb$$' .nbdev_test.log || true); echo "nbdev_test: $$((n-f)) passed, $$f failed"; exit 1; fi

# Benchmarks (nbs/80_bench.ipynb) print one `name: value` line per figure with its spread (no timed assertions anywhere).
bench: $(STAMP)
	$(BIN)/dp_leakage_bench

# The documentation site: Quarto where installed, else nbconvert into _docs/ (tools/site.py says which).
site: $(STAMP)
	$(BIN)/python tools/site.py

# Tables and figures of the grid runs (runs/train and runs/attack; never runs/_demo, runs/_cli or tests' folders)
# into static/ and the results section of README.md.
results: $(STAMP)
	$(BIN)/python -m dp_leakage.analysis --runs runs --static static --readme README.md
	$(BIN)/python -m dp_leakage.imprint --runs runs --static static --readme README.md

# Headless Chromium opens every page of _docs/ (installs Debian's chromium where missing).
check-site: $(STAMP)
	$(BIN)/python tools/check_site.py
