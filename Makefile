# Two commands set everything up on a fresh machine:  make demo   and   make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.demo-stamp
PYTEST_ARGS ?=

.PHONY: install demo test test-unit lint ui bench bench-smoke services-up services-down clean

# Everything: the product, the test tools, the loopback servers and pyspark (the Hive Thrift Server of the tests).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,services,hive]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs the product and the loopback servers only (no pyspark: ~500 MB less).
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[services]'
	touch $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/pseidon-dagster demo --config conf/pseidon.edn

# Every test, with branch coverage of the package (its subprocesses too: pyproject.toml [tool.coverage]); the last
# lines are the branches covered in core/ and defs/ (scripts/coverage_summary.py).
test: $(STAMP)
	rm -rf var/coverage && mkdir -p var/coverage
	$(BIN)/python -m pytest --cov --cov-report= $(PYTEST_ARGS)
	$(BIN)/python scripts/coverage_summary.py

# The tests that need no server (tests/unit/; tests/conftest.py refuses one there that asks for a server): about a minute.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

# ruff (pycodestyle, pyflakes, import order, bugbear, pyupgrade) everywhere; mypy on core/ (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check pseidon_dagster tests bench scripts vagrant/scripts
	$(BIN)/mypy

ui: $(STAMP)
	mkdir -p var/dagster_home && cp dagster.yaml var/dagster_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/var/dagster_home PSEIDON_CONF=$(CURDIR)/conf/pseidon.edn \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)
	mkdir -p var && $(BIN)/python bench/bench_ingest.py --json var/bench.json

# A small run of the benchmark, so it cannot rot (CI runs it; the figures mean nothing at this size).
bench-smoke: $(STAMP)
	$(BIN)/python bench/bench_ingest.py --messages 20000 --rounds 1
	$(BIN)/python bench/bench_sensor.py --sizes 20 --rounds 1

services-up: $(STAMP)
	$(BIN)/pseidon-dagster services up

services-down: $(STAMP)
	$(BIN)/pseidon-dagster services down

clean:
	rm -rf var build *.egg-info

# Mutation testing of the ingest stages, the offsets, the file names and the in-run checks ([tool.mutmut] in
# pyproject.toml): one to two hours on 2 CPUs, not in CI. Needs MariaDB and Redis as `make test` does; prints the
# numbers and the mutants no test killed (docs/mutation-survivors.md says why each may survive).
.PHONY: mutate
mutate: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[mutate]'
	$(BIN)/python scripts/mutate.py
