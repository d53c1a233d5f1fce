# Two commands matter: `make demo` and `make test`. Everything else is what they stand on.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
WEB_BUILT := src/smartcity/core/static/build/.built
WEB_SOURCES := $(wildcard web/src/*) web/build.mjs web/package-lock.json

.PHONY: demo test install web system-deps lint bench serve messages clean

demo: install web
	$(BIN)/smartcity demo

test: install web system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

web: $(WEB_BUILT)

$(WEB_BUILT): $(WEB_SOURCES)
	cd web && npm ci --no-audit --no-fund --loglevel=error
	cd web && npm run build
	touch $@

# Debian packages the test suite runs for real: PostgreSQL, Mosquitto, Chromium (installs only what is missing).
system-deps:
	scripts/system-deps.sh

serve: install web
	$(BIN)/smartcity serve

bench: install web system-deps
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.summary --readme

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

messages: install
	$(BIN)/pybabel extract -F babel.cfg -o var/messages.pot src/smartcity
	for lang in ko en; do $(BIN)/pybabel update -N -i var/messages.pot -d src/smartcity/core/locale -l $$lang; done

clean:
	rm -rf $(VENV) web/node_modules src/smartcity/core/static/build
