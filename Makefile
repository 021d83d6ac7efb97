# shopfloor: run `make help` for the targets.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e contracts -e runtime -e services/order -e services/inventory -e services/fulfilment -e services/risk -e services/service-desk -e services/analytics -e devstack

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast bench lint fmt contracts clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): contracts/pyproject.toml runtime/pyproject.toml services/order/pyproject.toml services/inventory/pyproject.toml services/fulfilment/pyproject.toml services/risk/pyproject.toml services/service-desk/pyproject.toml services/analytics/pyproject.toml devstack/pyproject.toml requirements-dev.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PACKAGES) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create .venv and install every package

run: $(STAMP) ## start broker + services + traffic simulator (Ctrl-C stops all)
	$(BIN)/shopfloor run

test: $(STAMP) ## the whole suite: domain, service, integration (real broker + PostgreSQL)
	$(BIN)/python -m shopfloor_contracts.export --check
	$(BIN)/pytest

test-fast: $(STAMP) ## domain and service tests only
	$(BIN)/pytest -m "not integration"

bench: $(STAMP) ## place_orders, reservations, peak (fulfilment under a 15x peak), risk_stage, desk, analytics: bench/README.md
	$(BIN)/python -m bench.place_orders
	$(BIN)/python -m bench.reservations
	$(BIN)/python -m bench.peak
	$(BIN)/python -m bench.risk_stage
	$(BIN)/python -m bench.desk
	$(BIN)/python -m bench.analytics

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check contracts runtime services devstack tests bench
	$(BIN)/ruff format --check contracts runtime services devstack tests bench
	$(BIN)/mypy contracts/src runtime/src services/order/src services/inventory/src services/fulfilment/src services/risk/src services/service-desk/src services/analytics/src devstack/src

fmt: $(STAMP) ## format the code
	$(BIN)/ruff format contracts runtime services devstack tests bench
	$(BIN)/ruff check --fix contracts runtime services devstack tests bench

contracts: $(STAMP) ## regenerate contracts/schemas from the event models
	$(BIN)/python -m shopfloor_contracts.export

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) data
