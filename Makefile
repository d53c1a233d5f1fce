# Two commands matter: `make demo` and `make test`. Everything else is what they stand on.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
WEB_BUILT := src/smartcity/core/static/build/.built
WEB_SOURCES := $(wildcard web/src/*) web/build.mjs web/icons.mjs web/package-lock.json

.PHONY: demo test install web system-deps lint bench serve messages clean screenshots

demo: install web
	$(BIN)/smartcity demo

# The suite runs in TEST_WORKERS processes (pytest-xdist, a test file per worker at a time) sharing one
# PostgreSQL server; TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 3
test: install web system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

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

# The README's phone screenshots (390×844, Korean): the demo on a temporary database, each role signed in.
screenshots: install web
	$(BIN)/python scripts/screenshots.py --out docs/screenshots

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Each module keeps its own catalogue (src/smartcity/<module>/locale): its messages are extracted from its
# folder; core's also from the package's top-level files. translate/gettext(lang, msgid) and
# translated(request, msgid) carry the msgid second; N_() and NP_(context, msgid) mark msgids kept in tables.
MESSAGE_KEYWORDS := -k translate:2 -k gettext:2 -k translated:2 -k N_ -k NP_:1c,2
messages: install
	mkdir -p var
	for dir in src/smartcity/*/locale; do \
	  module=$$(basename $$(dirname $$dir)); sources=src/smartcity/$$module; \
	  if [ $$module = core ]; then sources="$$sources $$(ls src/smartcity/*.py)"; fi; \
	  $(BIN)/pybabel -q extract -F babel.cfg $(MESSAGE_KEYWORDS) --no-wrap --sort-by-file -o var/$$module.pot $$sources || exit 1; \
	  for lang in $$(ls $$dir); do \
	    $(BIN)/pybabel -q update -N --no-wrap -i var/$$module.pot -d $$dir -l $$lang || exit 1; \
	  done; \
	done


clean:
	rm -rf $(VENV) web/node_modules src/smartcity/core/static/build
