# Two entry points that work on a fresh clone: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv if it is missing and install gazelab with every extra into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gazelab-installed
DEMO_OUT ?= demo_out

.PHONY: install demo test lint bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[all,dev]"
	$(PY) scripts/fetch_face_detector.py
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gazelab demo --out $(DEMO_OUT)

# pytest exits 5 when it collected no test: treat that as a failure, not a pass.
test: $(STAMP)
	@$(PY) -m pytest -n 2 --dist loadfile -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
