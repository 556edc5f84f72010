# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test demo bench faults soak clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Benchmarks add matplotlib (the PNG chart) on top of the test set-up; see the README, section Benchmarks.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Tests mostly wait on loopback sockets and timers, so 4 workers pay off even on 2 cores.
# TEST_ARGS="-n 0 tests/test_engine.py" runs a subset in one process.
TEST_ARGS ?= -n 4
test: $(STAMP)
	$(BIN)/python -m pytest -q $(TEST_ARGS)

demo: $(STAMP)
	$(BIN)/rfqbot demo $(DEMO_ARGS)

# About 13 minutes: 4 x 1,000 RFQs at the venue's order pace, 3 x 200,000 frames, micro-benchmark.
# Results (JSON, PNG, profiles, logs) go to benchmarks/results/. BENCH_ARGS=--quick for a smoke run.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The fault-injection suite, long scenarios included (KILLS kill -9 rounds of a busy run,
# 100 hypothesis examples of bad frames); prints the report table (README, section Reliability).
KILLS ?= 30
faults: $(STAMP)
	$(BIN)/python -m tests.faults.report --kills $(KILLS)

# rfqbot run against a busy simulator for MINUTES: RSS, open fds, listen-key renewals.
MINUTES ?= 10
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
