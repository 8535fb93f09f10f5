# smartlabel: two commands on a fresh machine.
#   make run    install, load aldata.csv into an embedded SQLite database, start the
#               orchestrator and the labelling page (prints the URL)
#   make test   install everything the tests need (Python packages, Debian's chromium
#               and caddy, PostgreSQL via pgserver) and run them
#   make compose-check   the committed stack in a real Docker engine (minutes; not part of
#               make test): scripts/compose_check.py

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test install install-dev chromium caddy env compose-check bench bench-quick bench-scale constraints clean

run: $(STAMP)
	$(VENV)/bin/smartlabel run

test: $(DEV_STAMP) chromium caddy
	$(PY) -m pytest

install: $(STAMP)
install-dev: $(DEV_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[ui,keras,plots,encoders]"
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[ui,keras,plots,encoders,dev]"
	touch $@

# A Debian package the tests need, installed when missing (as root; else say what to run).
define apt_tool
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	  else \
	    echo "$(1) is missing: run 'sudo apt-get install -y $(1)' ($(2))"; exit 1; \
	  fi; }
endef

# Browser tests drive Debian's Chromium through Playwright (Playwright cannot
# download its own browser here).
chromium:
	$(call apt_tool,chromium,browser tests need it)

# The proxy tests run the Caddyfile with Debian's caddy (2.6) in front of a real Voila.
caddy:
	$(call apt_tool,caddy,the proxy tests need it)

env:
	$(PYTHON) scripts/make_env.py

# The committed HEAD, cloned, brought up with docker compose (the host's Docker, else the
# private engine of ../shared/compose-check/engine.sh) and checked; last line
# `compose: N/M checks passed`. Options: COMPOSE_CHECK_ARGS="--engine private --keep".
compose-check: $(DEV_STAMP) chromium
	nice -n 10 $(PY) scripts/compose_check.py $(COMPOSE_CHECK_ARGS)

bench: $(DEV_STAMP)
	$(PY) bench/run.py

bench-quick: $(DEV_STAMP)
	$(PY) bench/run.py --quick

# 1M posts on PostgreSQL (issue 16): import, cold first run, steady cycle (10-20 minutes; not in
# `make bench`): bench/bench_scale.py, results in bench/results/scale.json
bench-scale: $(DEV_STAMP)
	nice -n 5 $(PY) bench/run.py --only scale --timeout 3600

constraints:
	(echo "# Exact versions every install uses (pip install -c constraints.txt ...)."; \
	 echo "# Regenerate from a working .venv with: make constraints"; \
	 $(PIP) freeze --exclude-editable | grep -v -i '^smartlabel') > constraints.txt

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache test-artifacts
