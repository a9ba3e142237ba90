# creditline: `make run` runs the whole thing locally, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run up down status worker test test-unit lint docs docs-serve schemas bench \
	bench-quick bench-shadow bench-soak clean lock check-pythons

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# The compiled status machine (native/, Rust with PyO3): one abi3 wheel, for CPython 3.11 and every
# newer one (scripts/check-pythons.sh installs it too), built from the locked crates. Where
# there is no cargo the Python core answers alone: the same answers, slower (the stamp is left
# unset, so a later `make install` builds it once cargo is there).
NATIVE_STAMP := $(VENV)/.native-stamp
NATIVE_WHEELS := $(VENV)/native-wheels
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/pyproject.toml \
	native/creditline_native.pyi $(wildcard native/src/*.rs)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SOURCES)
	@export PATH="$$PATH:$$HOME/.cargo/bin"; \
	if command -v cargo >/dev/null 2>&1; then \
	  rm -rf $(NATIVE_WHEELS) && \
	  $(BIN)/pip wheel -q --no-deps -w $(NATIVE_WHEELS) ./native && \
	  $(BIN)/pip install -q --force-reinstall --no-deps $(NATIVE_WHEELS)/creditline_native-*.whl && \
	  touch $@; \
	else echo "cargo not found: the compiled status machine is not built; the Python core answers alone"; fi

ASYNCAPI_CHECK := tools/asyncapi/node_modules/.installed-stamp

$(ASYNCAPI_CHECK): tools/asyncapi/package.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tools/asyncapi && npm install --silent --no-audit --no-fund --no-package-lock && touch node_modules/.installed-stamp; \
	else echo "npm not found: the AsyncAPI document will only be checked structurally"; fi

# Ajv (JSON Schema 2020-12) for the contract tests: the published schemas as a JavaScript
# integrator's validator reads them.
CONTRACT_CHECK := tools/contract/node_modules/.installed-stamp

$(CONTRACT_CHECK): tools/contract/package.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tools/contract && npm install --silent --no-audit --no-fund --no-package-lock && touch node_modules/.installed-stamp; \
	else echo "npm not found: the JSON Schemas will only be checked with python-jsonschema"; fi

install: $(STAMP) $(NATIVE_STAMP) $(ASYNCAPI_CHECK) $(CONTRACT_CHECK)  ## Python deps (pinned, hashed), the compiled status machine, redis-server, Java, Maven, Prometheus, Go, toxiproxy when missing
	@bash scripts/install-system-deps.sh
	@bash scripts/install-toxiproxy.sh

up: install  ## local Kafka + Redis on loopback, topics created
	$(BIN)/creditline up

down:
	$(BIN)/creditline down

status:
	$(BIN)/creditline status

run: up  ## stack + worker + simulator, decisions printed as they arrive (Ctrl-C stops)
	$(BIN)/creditline demo

worker: up
	$(BIN)/creditline worker

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@set -e; export PATH="$$PATH:$$HOME/.cargo/bin"; cd native; \
	if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; else echo "no rustfmt: native/ not format-checked"; fi; \
	if cargo clippy --version >/dev/null 2>&1; then cargo clippy -q --release --locked -- -D warnings; \
	else echo "no clippy: native/ not linted"; fi

test: up lint docs check-pythons  ## unit, integration (real Kafka + Redis) and e2e tests
	$(BIN)/pytest

# MkDocs' strict mode counts the warnings it logs: a broken link or anchor, a page missing from
# the nav. (Never -q: it would hide them, and strict would count none.) NO_MKDOCS_2_WARNING
# silences mkdocs-material's banner about its successor, which is not a build warning.
docs: install  ## the documentation site (mkdocs-material) into site/, --strict
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install  ## the site on http://127.0.0.1:8000, rebuilt on every edit
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

test-unit: install
	$(BIN)/pytest tests/unit

bench: up  ## benchmarks with same-run baselines (not part of make test); results in bench-results/
	$(BIN)/python -m bench

bench-quick: up  ## the same at a tenth of the sizes
	$(BIN)/python -m bench --quick

bench-soak: up  ## the README's worker for 30 minutes at 2,000 events/s: its memory over time
	$(BIN)/python -m bench --only soak

bench-shadow: up  ## decision latency with and without a candidate in shadow, same worker, alternating rounds
	$(BIN)/python -m bench.shadow

schemas: install
	$(BIN)/creditline schemas export

lock:  ## regenerate requirements*.lock with hashes from pyproject.toml (pip-tools)
	scripts/lock.sh

check-pythons: install  ## the unit tests on every newer Python found here (3.12+; skips if none)
	scripts/check-pythons.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site native/target
