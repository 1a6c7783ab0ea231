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

.PHONY: demo test test-quick install clean onnx-weights mcu-tools mcu-check mqtt-broker

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	-@$(MAKE) --no-print-directory mqtt-broker
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

# Mosquitto, the MQTT broker the edge-network tests start (docs/edge-network.md): from apt where
# that works (root, or sudo without a password); never fails: without it the tests use amqtt
# (pure Python, in the test extra).
mqtt-broker:
	@if command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto; then echo "mosquitto present"; \
	elif command -v apt-get >/dev/null; then SUDO=$$(test "$$(id -u)" = 0 || echo "sudo -n"); \
	    $$SUDO apt-get install -y --no-install-recommends mosquitto >/dev/null 2>&1 && echo "mosquitto installed" \
	    || echo "note: mosquitto not installed (the MQTT tests use amqtt instead)"; \
	else echo "note: no apt-get; the MQTT tests use amqtt instead of mosquitto"; fi

# The shipped students' ONNX files (src/xiaonet/weights/NAME.onnx, what a torch-free install
# picks with); rerun after shipping new weights (tests/picking/test_loading.py checks they match).
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
