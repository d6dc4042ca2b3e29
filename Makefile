# Two commands for a new machine with Python >= 3.11, git and make:
#   make demo   run the demo production line (examples/demo)
#   make test   install everything, then lint, type-check and run the whole suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The first Python >= 3.11 on PATH builds the virtual environment.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

.PHONY: test demo install lint typecheck pytest fuzz bench chaos scale histories clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 not found on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/pyright --pythonpath $(PY)

# Two pytest processes, each with its own dev server, time-skipping server and secrets scan:
# most tests wait on servers and subprocesses, so two halve the wall time on two cores.
# PYTEST_ARGS="-n 0" runs them in one process.
PYTEST_ARGS ?= -n 2

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(STAMP)
	$(VENV)/bin/jidoka demo $(DEMO_ARGS)

# The fuzz campaign of tests/fuzz with JIDOKA_FUZZ_EXAMPLES (default 10,000) examples per
# property, random but reproducible: the seed is printed, and FUZZ_SEED=<seed> replays it.
# (`make test` runs the same properties derandomized, with a small budget.)
fuzz: $(STAMP)
	@seed=$(or $(FUZZ_SEED),$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')); \
	echo "fuzz seed: $$seed (make fuzz FUZZ_SEED=$$seed replays this run)"; \
	$(PY) -m pytest tests/fuzz -q -p no:cacheprovider --hypothesis-profile=fuzz \
		--hypothesis-seed=$$seed $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/line_throughput.py
	$(PY) bench/report_parse.py

# 100 issues, 3 jidoka worker processes, workers and the server SIGKILLed along the way: nothing
# lost, duplicated or left running (bench/chaos.py --help for the options).
chaos: $(STAMP)
	$(PY) bench/chaos.py $(CHAOS_ARGS)

# 1,000 queued issues, 50 agents, one line (bench/scale.py --help; SCALE_ARGS=--workers 3).
scale: $(STAMP)
	$(PY) bench/scale.py $(SCALE_ARGS)

# After an intentional workflow change only (see tests/histories/record.py): re-record the
# histories tests/workflows/test_replay.py replays.
histories: $(STAMP)
	$(PY) -m tests.histories.record

clean:
	rm -rf $(VENV) .jidoka examples/demo/.run .pytest_cache
