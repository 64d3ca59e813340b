# The single source of dev commands. `make demo` and `make test` do all the set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export REDIS_URL ?= redis://localhost:6379/0
export DATABASE_URL ?= postgresql://localhost/notifications
STAMP := $(VENV)/.installed
# pytest-xdist processes for `make test`: test files mostly wait on real processes.
TEST_WORKERS ?= 4
LOCK := requirements.lock
PY_DIRS := notify rules consumer tasks webhooks console cli harness schemas sandbox tests scripts $(wildcard bench)

.PHONY: install lock services migrate test unit integration lint format alerts docs demo bench clean

install: $(STAMP)

# The application and its tools at the locked versions (hashes checked), then the project
# itself without resolving anything again.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	scripts/chromium.sh
	$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
		echo "requirements.lock lacks what pyproject.toml asks for: run make lock" >&2; exit 1; }
	touch $(STAMP)

# Re-resolve the lock after changing dependencies in pyproject.toml (uv: a fast resolver).
lock:
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 \
		--generate-hashes --quiet -o $(LOCK)

services:
	@scripts/services.sh

migrate: install services
	$(BIN)/notify migrate

lint: install
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy --strict notify rules consumer tasks webhooks console cli harness schemas sandbox bench scripts/demo.py
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format $(PY_DIRS)
	$(BIN)/ruff check --fix $(PY_DIRS)

docs: install
	$(BIN)/python -m notify.settings_doc

alerts:
	deploy/check-alerts.sh

unit: install
	$(BIN)/pytest tests/unit tests/sandbox -q -n 2

integration: install services
	NOTIFY_REQUIRE_SERVICES=1 $(BIN)/pytest tests/integration -q -n $(TEST_WORKERS) --dist loadfile

# Everything CI runs: lint, the alert rule tests, the bundled rules' cases, and every test
# against real services.
test: install services lint alerts
	$(BIN)/notify rules test rules.yaml --cases rules.cases.yaml
	NOTIFY_REQUIRE_SERVICES=1 $(BIN)/pytest tests -q -n $(TEST_WORKERS) --dist loadfile

demo: install services
	$(BIN)/python scripts/demo.py

bench: install services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache bench-results
