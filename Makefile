# The two commands a newcomer needs: `make serve` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install serve test test-faults test-sweep test-stress test-full bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

serve: install  ## the service on the embedded default: SQLite, local CPU runner, loopback
	$(BIN)/latbench serve

test: install  ## the default suite (under ~15 min on 2 cores)
	$(BIN)/pytest -q

test-faults: install  ## the long fault tests with real processes (crashes, restarts, a silent runner)
	$(BIN)/pytest -q -m faults

test-sweep: install  ## a daily-rotating quarter of the full sweep (LATBENCH_FULL_SLICE, _SEED)
	LATBENCH_FULL_SLICE=$${LATBENCH_FULL_SLICE:-4} $(BIN)/pytest -q -m full

test-stress: install  ## five runs of the e2e and timing-sensitive tests, each beside two busy processes
	.ci/stress 5

test-full: install  ## everything, including the sweep over every seed-family variant
	$(BIN)/pytest -q -m "not bench"

bench: install  ## benchmark scripts that print figures
	for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) .latbench .pytest_cache
