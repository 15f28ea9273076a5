# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m scripts.run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	TEST_REDIS=cluster $(VENV)/bin/pytest tests/sabong tests/ussd -m "not browser and not slow" -q

# About a minute: every test that starts no server subprocess of its own (unit tests and
# in-process apps on one embedded Redis and PostgreSQL); the `server` marker is in tests/conftest.py.
.PHONY: test-fast
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not server and not slow and not browser" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
