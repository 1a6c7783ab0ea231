# Two set-up commands on a fresh machine (see README):
#   make demo   - create .venv, install, pick ObsPy's example event, write a figure
#   make test   - create .venv, install, run the whole test suite
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.xiaonet-installed

.PHONY: demo test test-quick install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/xiaonet pick --example --plot demo_output --out demo_output/picks.csv
	@cat demo_output/picks.csv
	@echo "figure: demo_output/BW.RJOB..EH.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) demo_output
