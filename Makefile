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

demo: $(STAMP)
	$(BIN)/dp_leakage_demo

# The library must be what the notebooks export; then every notebook runs as a test (slow cells skipped).
test: $(STAMP)
	rm -rf .export-check && cp -r dp_leakage .export-check
	$(BIN)/nbdev_export
	if ! diff -r -q -x __pycache__ .export-check dp_leakage; then \
	  rm -rf .export-check; echo "nbdev_export changed dp_leakage/: run nbdev_export and commit the library"; exit 1; fi
	rm -rf .export-check
	n=$$(find nbs -name '*.ipynb' -not -name '_*' -not -path '*/.ipynb_checkpoints/*' | wc -l); \
	if $(BIN)/nbdev_test --n_workers 2 --timing 2>&1 | tee .nbdev_test.log; then \
	  echo "nbdev_test: $$n passed, 0 failed"; \
	else f=$$(grep -c '^	.*\.ipynb$$' .nbdev_test.log || true); echo "nbdev_test: $$((n-f)) passed, $$f failed"; exit 1; fi

# Benchmarks print one `name: value` line per figure (no timed assertions anywhere).
bench: $(STAMP)
	$(BIN)/dp_leakage_bench_train
	$(BIN)/dp_leakage_bench_attack

# The documentation site: Quarto where installed, else nbconvert into _docs/ (tools/site.py says which).
site: $(STAMP)
	$(BIN)/python tools/site.py

# Tables and figures of the runs under runs/ into static/ and the results section of README.md.
results: $(STAMP)
	$(BIN)/python -m dp_leakage.analysis --runs runs --static static --readme README.md

# Headless Chromium opens every page of _docs/ (installs Debian's chromium where missing).
check-site: $(STAMP)
	$(BIN)/python tools/check_site.py
