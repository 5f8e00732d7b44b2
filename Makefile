# Two commands do everything on a fresh machine:
#   make demo   create/reuse .venv, install, train configs/demo.yaml and print a sample
#   make test   create/reuse .venv, install with dev extras, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0

.PHONY: demo test install clean

# Stamp files make a second call skip every install step.
$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,tensorboard,export]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/rnncli train configs/demo.yaml --set run.overwrite=true
	$(VENV)/bin/rnncli generate runs/demo --prompt "The " --length 400 --temperature 0.7 --seed 0

test: $(VENV)/.installed-dev
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs
