# BFA Ledger — make verbs: demo, test, bench, lint, fmt (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

# The local PostgreSQL server, when one answers and no URL was given.
LOCAL_PG := postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: demo test test-sqlite bench lint fmt schemas i18n clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (log: $(VENV)/pip.log)"
	@$(BIN)/python -m pip install --upgrade pip > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@$(BIN)/python -m pip install -e '.[dev]' >> $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	touch $@

demo: $(STAMP)
	$(BIN)/bfa demo

test: $(STAMP)
	@if [ -z "$$BFA_TEST_DATABASE_URL" ] && $(BIN)/python -c "import psycopg; psycopg.connect('$(LOCAL_PG)', connect_timeout=3).close()" 2>/dev/null; then \
	  export BFA_TEST_DATABASE_URL=$(LOCAL_PG); echo "PostgreSQL for tests: $(LOCAL_PG)"; fi; \
	$(BIN)/pytest -n 2 -q

test-sqlite: $(STAMP)
	BFA_TEST_BACKENDS=sqlite $(BIN)/pytest -n 2 -q

bench: $(STAMP)
	@if [ -z "$$BFA_BENCH_DATABASE_URL" ]; then export BFA_BENCH_DATABASE_URL=$(LOCAL_PG); fi; \
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.reconcile_bench $(RECONCILE_BENCH_ARGS)
	$(BIN)/python -m bench.archive_bench $(ARCHIVE_BENCH_ARGS)
	$(BIN)/python -m bench.precheck_bench $(PRECHECK_BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

# extract every message people read, merge it into the zh_CN catalog, compile bfa.mo
i18n: $(STAMP)
	$(BIN)/python -m tests.i18n.catalog

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
