# Set-up is automatic: every target (re)creates .venv from pyproject.toml + constraints.txt when they change.
PY ?= python3
# pytest-xdist workers of `make test` (a test file's tests stay on one worker: --dist loadfile)
TEST_WORKERS ?= 2
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.alignrank-installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv repro test test-long mlflow-ui clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps -c constraints.txt netcal  # D-ECE reference of the tests; its metrics need only numpy/scipy/torch
	touch $@

repro: $(STAMP)  ## run the pipeline (dvc repro) on the embedded default
	$(BIN)/dvc repro

test: $(STAMP)  ## lint the whole tree, then run the test suite (excludes tests marked long)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-long: $(STAMP)  ## run only the long tests
	$(BIN)/python -m pytest -m long

mlflow-ui: $(STAMP)  ## browse the tracked runs on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///outputs/mlflow/mlflow.db --host 127.0.0.1 --port 5000
