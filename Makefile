# make install: set everything up in .venv; make test: install, then run the tests.
VENV ?= .venv
export DHLIVE_VENV := $(VENV)

.PHONY: install test bench clean

install:
	bash scripts/install.sh

test: install
	$(VENV)/bin/python -m pytest -q || [ $$? -eq 5 ]  # 5: no tests collected

bench: install
	$(VENV)/bin/python scripts/bench_prepare.py
	$(VENV)/bin/python scripts/bench_audio.py
	$(VENV)/bin/python scripts/bench_render.py
	$(VENV)/bin/python scripts/bench_infer.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
