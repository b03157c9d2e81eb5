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

# Python's fault handler stays on for the whole process (pytest turns its own off when it finishes): a crash in
# an exit handler or a thread after the last test prints every thread's stack instead of a bare SIGSEGV.
PYTEST := PYTHONFAULTHANDLER=1 $(VENV)/bin/pytest

# The whole suite on SQLite, then every test that reaches the database again on a throwaway PostgreSQL cluster
# the tests start themselves (the rest, rendering and the production end-to-end run among them, would only repeat).
test: test-sqlite
	GEOSHIP_TEST_DATABASE=postgresql GEOSHIP_TEST_ONLY_DATABASE=1 $(PYTEST) $(PYTEST_ARGS)

test-sqlite: $(STAMP)
	GEOSHIP_TEST_DATABASE=sqlite $(PYTEST) $(PYTEST_ARGS)

test-postgres: $(STAMP)
	GEOSHIP_TEST_DATABASE=postgresql $(PYTEST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
