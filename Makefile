# The two commands: `make demo` (a real export, end to end) and `make test` (the whole suite).
# Both create .venv/ at the repository root and install geoship into it, pinned by constraints.txt.

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-sqlite test-postgres install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geoship demo

# The whole suite, once on SQLite and once on a throwaway PostgreSQL cluster the tests start themselves.
test: test-sqlite test-postgres

test-sqlite: $(STAMP)
	GEOSHIP_TEST_DATABASE=sqlite $(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	GEOSHIP_TEST_DATABASE=postgresql $(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
