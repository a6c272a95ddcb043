# Set-up commands (see README.md):
#   make demo   install the codec (numpy, pillow, click, constriction; no torch), then
#               compress/decompress the bundled sample with the default model
#   make test   install with the test extra (pytest, and torch: the tests train and
#               evaluate tiny float models), then run the fast tests
#
# constraints.txt pins torch's version (2.13.0), not its build: here pip finds the local
# CPU wheel; elsewhere, install the CPU build first from PyTorch's CPU index, or your
# CUDA build (README.md, Set up). No index URL here: it would bypass the local wheel.

PYTHON ?= python3
PIP := $(PYTHON) -m pip
VLAE := $(PYTHON) -m vlaecodec
CONSTRAINTS ?= constraints.txt
SAMPLES ?= samples/digits
BUILD ?= build/demo
# Empty = the default model; e.g. `make demo MODEL=vlae-mnist-factorized-v1`.
MODEL ?=

.PHONY: install install-test demo test test-all clean

install:
	$(PIP) install -c $(CONSTRAINTS) -e .

install-test:
	$(PIP) install -c $(CONSTRAINTS) -e '.[test]'

demo: install
	rm -rf $(BUILD)
	mkdir -p $(BUILD)
	$(VLAE) compress $(SAMPLES) -o $(BUILD)/digits.vlae $(if $(MODEL),--model $(MODEL))
	$(VLAE) decompress $(BUILD)/digits.vlae -o $(BUILD)/digits
	$(PYTHON) bench/same_pixels.py $(SAMPLES) $(BUILD)/digits
	@echo "sizes: $$(ls $(SAMPLES)/*.png | wc -l) PNGs = $$(cat $(SAMPLES)/*.png | wc -c) bytes;" \
	      ".vlae archive = $$(wc -c < $(BUILD)/digits.vlae) bytes"
	$(VLAE) info $(BUILD)/digits.vlae

test: install-test
	$(PYTHON) -m pytest -q -m "not slow"

test-all: install-test
	$(PYTHON) -m pytest -q

clean:
	rm -rf build/ dist/ *.egg-info .pytest_cache
