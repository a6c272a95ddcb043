# Set-up commands (see README.md):
#   make demo   install, then compress/decompress the bundled sample with the default model
#   make test   install with the test extra, then run the fast tests
#
# torch is pinned to the local CPU wheel through constraints.txt; GPU users install
# their own torch first and run `pip install -e .` (see README.md).

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
