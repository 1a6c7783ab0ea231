# Two set-up commands on a fresh machine (see README):
#   make demo   - create .venv, install, pick ObsPy's example event, write a figure
#   make test   - create .venv, install, run the whole test suite and check the package layers (lint-imports)
#   make mcu-check - the C runtime on an emulated Cortex-M4F (not part of `make test`; needs the ARM tools)
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.xiaonet-installed

.PHONY: demo test test-quick install clean onnx-weights mcu-tools mcu-check

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
	$(BIN)/lint-imports

test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The shipped students' ONNX files (src/xiaonet/weights/NAME.onnx, what a torch-free install
# picks with); rerun after shipping new weights (tests/test_picker_factory.py checks they match).
onnx-weights: $(STAMP)
	$(BIN)/python -m xiaonet.picking.student_onnx

clean:
	rm -rf $(VENV) demo_output

# The generated C runtime on an emulated Cortex-M4F (QEMU mps2-an386): picks compared with
# x86, flash / RAM / instructions per second reported (docs/edge.md). Needs the ARM toolchain
# and QEMU (`make mcu-tools`, Debian/Ubuntu); not part of `make test` or CI.
# MCU_ARGS=--aarch64 also runs it as aarch64 Linux under qemu-aarch64 (gcc-aarch64-linux-gnu, qemu-user).
MCU_TOOLS := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
MCU_PYTHON ?= $(BIN)/python

mcu-tools:
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null \
	    && test -f /usr/lib/arm-none-eabi/newlib/libc_nano.a; then echo "ARM toolchain and QEMU present"; \
	else SUDO=$$(test "$$(id -u)" = 0 || echo sudo); $$SUDO apt-get install -y --no-install-recommends $(MCU_TOOLS); fi

mcu-check: mcu-tools
	@command -v $(firstword $(MCU_PYTHON)) >/dev/null || { echo "mcu-check: $(firstword $(MCU_PYTHON)) not found: run 'make install' first (or set MCU_PYTHON)"; exit 2; }
	$(MCU_PYTHON) mcu/check.py $(MCU_ARGS)
