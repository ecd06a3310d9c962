# ksef_client: generated KSeF 2.0 client, hand-written SDK layer, emulator and contract suite.
# `make test` and `make generate` set everything up on a fresh machine (virtualenv in .venv).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
KSEF_DATA ?= ../shared/ksef
VENV ?= .venv
PY := $(VENV)/bin/python
SPEC_FILE := ksef_client/_data/ksef-openapi.json
GENERATED := ksef_client/_generated
INVOICE_MODELS := ksef_client/_invoice_models
PYTEST_ARGS ?=

.PHONY: help install spec spec-update generate check-generated lint test fuzz conformance bench soak peers package wheel-from-clone clean

help:
	@echo "make install          virtualenv in $(VENV) with the package (editable) and dev tools"
	@echo "make spec             pinned spec and XSDs from KSEF_DATA=$(KSEF_DATA) or the official URL, SHA-256 checked"
	@echo "make generate         regenerate $(GENERATED) from the pinned spec and $(INVOICE_MODELS) from the pinned XSDs"
	@echo "make check-generated  regenerate both and fail if the result differs from what is committed"
	@echo "make lint             ruff and mypy --strict"
	@echo "make test             the test suite (installs first when needed)"
	@echo "make fuzz             hostile answers to every SDK call, many examples (tests/fuzz; a quick profile runs in make test)"
	@echo "make conformance      the contract suite with 100 cases per operation"
	@echo "make bench            benchmarks with the baseline SDK beside them (bench/RESULTS.md)"
	@echo "make soak             invoices through a faulty emulator: nothing lost, nothing twice"
	@echo "make peers            ksef2 and ksef-client (PyPI, own venvs) driven against the emulator (peers/RESULTS.md)"
	@echo "make package          wheel + sdist in dist/, twine check, install the wheel in a fresh venv and run an example"
	@echo "make wheel-from-clone  a wheel from a clean clone of HEAD (no make first), then the same smoke test"
	@echo "make spec-update SPEC=path-or-url  change report, new pin, regenerate, quick conformance"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: spec $(VENV)/.installed

spec:
	$(PYTHON) openapi/fetch_spec.py --data $(KSEF_DATA) --out $(SPEC_FILE)

generate: install
	$(PY) -m generator --strict $(SPEC_FILE) $(GENERATED)
	$(PY) -m generator.invoices ksef_client/_data $(INVOICE_MODELS)

check-generated: generate
	@git diff --exit-code --stat -- $(GENERATED) $(INVOICE_MODELS) || (echo "generated code differs from the commit: run 'make generate' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED) $(INVOICE_MODELS))" || (git status --porcelain -- $(GENERATED) $(INVOICE_MODELS) && echo "untracked generated files" && exit 1)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --exclude $(GENERATED) .
	$(VENV)/bin/mypy

test: install
	KSEF_DATA=$(KSEF_DATA) $(PY) -m pytest $(PYTEST_ARGS)

# Hostile input in full: every test of tests/fuzz with many examples each (make test runs a quick profile).
fuzz: install
	KSEF_FUZZ=full KSEF_DATA=$(KSEF_DATA) $(PY) -m pytest -q -s -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

# Move the pin: change report, new lock, regenerate (strict), quick conformance profile.
spec-update: install
	@test -n "$(SPEC)" || (echo "usage: make spec-update SPEC=path-or-url" && exit 2)
	$(PY) -m generator.spec_update --data $(KSEF_DATA) $(SPEC)
	$(PY) -m generator --strict $(SPEC_FILE) $(GENERATED)
	$(PY) -m generator.invoices ksef_client/_data $(INVOICE_MODELS)
	KSEF_DATA=$(KSEF_DATA) $(PY) -m pytest -q conformance

# Build, check the metadata, and smoke-test the wheel installed on its own (tests/smoke_wheel.py).
package: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*
	$(PY) tests/smoke_wheel.py dist

# A wheel built from a clean clone of HEAD, with no `make` first: setup.py's build hook must bring
# the pinned spec and XSDs in (from KSEF_DATA, made absolute for the clone, or the official URLs).
CLONE_DIR ?= build/clean-clone
wheel-from-clone:
	rm -rf $(CLONE_DIR) && git clone --quiet . $(CLONE_DIR)
	test ! -e $(CLONE_DIR)/ksef_client/_data
	cd $(CLONE_DIR) && KSEF_DATA=$(abspath $(KSEF_DATA)) $(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PYTHON) tests/smoke_wheel.py $(CLONE_DIR)/dist

# Benchmarks beside the baseline SDK (installed into bench/.baseline-venv); writes bench/RESULTS.md.
bench: install
	$(PY) -m bench.run

# 2,000 online + 2,000 batch invoices through 20 % faults: 0 lost, 0 numbered twice (SOAK_QUICK=1: small).
soak: install
	$(PY) -m bench.soak

# Other SDKs against the emulator: ksef2 and ksef-client from PyPI (pinned, each in peers/.venv-*),
# driven through their public APIs; outcomes checked against peers/expected.json (PEERS_ARGS: see
# python -m peers --help). The verdict logic's own tests run first.
PEERS_ARGS ?=
peers: install
	$(PY) -m pytest -q -p no:cacheprovider peers/test_run.py
	$(PY) -m peers $(PEERS_ARGS)

# Contract suite in full: 100 cases per operation (`make test` runs it with 5).
conformance: install
	CONFORMANCE_EXAMPLES=$${CONFORMANCE_EXAMPLES:-100} KSEF_DATA=$(KSEF_DATA) $(PY) -m pytest conformance $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info ksef_client/_data peers/.venv-ksef2 peers/.venv-ksef-client
