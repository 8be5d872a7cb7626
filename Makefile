# make install: set everything up in .venv; make demo: install, then make demo.mp4 with the
# shipped models; make test: install, then run the tests.
VENV ?= .venv
export DHLIVE_VENV := $(VENV)

.PHONY: install demo test lint bench clean

install:
	bash scripts/install.sh

demo: install
	$(VENV)/bin/dhlive demo --out demo.mp4

test: install
	$(VENV)/bin/python -m pytest -q || [ $$? -eq 5 ]  # 5: no tests collected

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(VENV)/bin/python scripts/bench_prepare.py
	$(VENV)/bin/python scripts/bench_audio.py
	$(VENV)/bin/python scripts/bench_render.py
	$(VENV)/bin/python scripts/bench_infer.py
	$(VENV)/bin/python scripts/bench_serve.py
	$(VENV)/bin/python scripts/bench_quality.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
