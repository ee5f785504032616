# The README's two commands: `make demo` and `make test`. Everything else is a convenience.
# Both create .venv on first use from pyproject.toml and need only Python 3.11+ and make.

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
# First interpreter on PATH that is Python 3.11 or newer.
PYTHON ?= $(shell for p in python3 python3.11 python3.12 python3.13 python; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	  && { echo $$p; break; }; done)
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-slow test-gate lint check schema bench bench-quick soak sandbox clean help

help:
	@echo "make demo    run the daemon against the embedded sandbox (config/demo.yaml)"
	@echo "make test    lint and run the whole test suite"
	@echo "make test-fast   lint and every test that starts no simulator, daemon, subprocess or server"
	@echo "make test-slow   the tests make test-fast leaves out, except the gate (docs/testing.md)"
	@echo "make test-gate   the fault-injection gate alone"
	@echo "make check   validate config/connector.yaml and mappings/ offline"
	@echo "make schema  regenerate mappings/schema/*.json from the config models"
	@echo "make sandbox serve the ServiceNow and Jira simulators on 8090/8091 until Ctrl-C"
	@echo "make bench   run every benchmark (about 2-2.5 hours), figures as in docs/benchmarks.md"
	@echo "make bench-quick   the same at small sizes (a check, not figures)"
	@echo "make soak    the fault-injection gate at ten times its size, then with two instances (about 70 min)"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is required (none found on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	@touch $@

demo: $(STAMP)
	$(BIN)/mim-connector run -c config/demo.yaml

# Two runs side by side: the fault gate (tests/scenarios/test_gate.py: one played scenario whose
# verdicts time requests to the millisecond) alone at normal priority, and everything else in three
# workers at the lowest CPU and disk priority (the gate's daemon must never wait for them), since
# those tests mostly wait on daemons, sandboxes and polls. The gate's report is printed after the
# rest; the target fails if either run does.
GATE := tests/scenarios/test_gate.py
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@log=$$(mktemp); $(BIN)/python -m pytest $(GATE) >"$$log" 2>&1 & gate=$$!; \
	nice -n 19 ionice -c 3 $(BIN)/python -m pytest -n 3 --dist loadfile --ignore=$(GATE); rest=$$?; \
	wait $$gate; gated=$$?; echo "--- the gate ($(GATE)) ---"; cat "$$log"; rm -f "$$log"; \
	test $$rest -eq 0 && test $$gated -eq 0

# The tiers are pytest markers set by tests/conftest.py (docs/testing.md): "slow" starts a simulator,
# a daemon, a subprocess or a PostgreSQL server; "gate" is the gate. The fast tier is one process:
# most of its time is importing, which more workers would only repeat.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	nice -n 19 ionice -c 3 $(BIN)/python -m pytest -n 3 --dist loadfile -m "slow and not gate" --ignore=$(GATE)

test-gate: $(STAMP)
	$(BIN)/python -m pytest $(GATE)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: $(STAMP)
	$(BIN)/mim-connector check -c config/connector.yaml

schema: $(STAMP)
	$(BIN)/mim-connector schema --write mappings/schema

sandbox: $(STAMP)
	$(BIN)/mim-connector sandbox -c config/demo.yaml

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

# The gate at ten times its size, then the gate at its size with two instances on PostgreSQL
# (tests/scenarios/test_gate_instances.py, about seven minutes).
soak: $(STAMP)
	$(BIN)/python -m tests.scenarios --scale 10
	MIM_GATE_INSTANCES=1 $(BIN)/python -m pytest -s tests/scenarios/test_gate_instances.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
