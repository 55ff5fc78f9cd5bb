# `make demo` and `make test` are all a new machine needs: each creates .venv if
# missing and installs the project (with its dev, orchestrators, postgres, sqlite and
# testdb extras: the tests start a PostgreSQL server of their own) into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,orchestrators,postgres,sqlite,testdb]'
	touch $(STAMP)

install: $(STAMP)

# Exit 1 from validate/sync is expected: the example's dirty rows are rejected.
# config.example.yaml reads its credentials from the environment: the sandbox's here.
demo: export ROKT_API_KEY := sandbox-key
demo: export ROKT_API_SECRET := sandbox-secret
demo: $(STAMP)
	$(BIN)/python examples/build_warehouse.py --out-dir examples
	$(BIN)/rokt-connector validate --config config.example.yaml --show 1; \
	  code=$$?; test $$code -le 1 || exit $$code
	$(BIN)/python examples/demo.py; code=$$?; test $$code -le 1 || exit $$code

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy connector

# The suite runs on every core (pytest-xdist), a test file to a worker: TEST_WORKERS=0 runs
# it in one process.
TEST_WORKERS ?= auto
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/prepare.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
