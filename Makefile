# Two entry points a new user needs; both install everything first (see scripts/env.sh).
SHELL := /bin/bash

.PHONY: demo test test-fast
demo:  ## install, then train full and erts-dbpd on the built-in synthetic dataset, compare them, write the report
	@venv=$$(bash scripts/env.sh) && $$venv/bin/erts demo --config configs/demo.yaml --name demo-$$(date +%Y%m%d-%H%M%S) $(ARGS)

test:  ## install, then run the whole test suite
	@venv=$$(bash scripts/env.sh) && $$venv/bin/python -m pytest -q $(ARGS)

test-fast:  ## skip the slow end-to-end tests
	@venv=$$(bash scripts/env.sh) && $$venv/bin/python -m pytest -q -m "not slow" $(ARGS)
