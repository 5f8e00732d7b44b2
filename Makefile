# Two commands do everything on a fresh machine:
#   make demo   create/reuse .venv, install, train configs/demo.yaml and print a sample
#   make test   create/reuse .venv, install with dev extras, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0
# Where torch comes from: PyTorch's own index of CPU-only wheels (not PyPI's Linux build, which
# downloads the multi-GB CUDA libraries). A GPU user overrides it, e.g.
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu126
# When the index cannot be reached (an offline machine with a local wheel, a mirror), pip's own
# configured index and wheels are used instead.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test install clean

# Stamp files make a second call skip every install step.
$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ] && PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= \
	    $(PY) -m pip install --quiet --timeout 30 --retries 1 --index-url "$(TORCH_INDEX)" \
	    "torch==$(TORCH_VERSION)" 2>/dev/null; then \
	  echo "installed torch $(TORCH_VERSION) from $(TORCH_INDEX)"; \
	else \
	  $(if $(TORCH_INDEX),echo "$(TORCH_INDEX) is not reachable (or has no torch $(TORCH_VERSION))";) \
	  echo "installing torch $(TORCH_VERSION) from pip's configured index and wheels"; \
	  $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"; \
	fi
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,export,serve,tensorboard]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/rnncli train configs/demo.yaml --set run.overwrite=true
	$(VENV)/bin/rnncli generate runs/demo --prompt "The " --length 400 --temperature 0.7 --seed 0

test: $(VENV)/.installed-dev
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs
