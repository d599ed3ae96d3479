# cryoprior: two commands for a fresh Debian machine.
#   make demo   installs everything (RELION 3.1.3 from Debian, a virtual environment, the package)
#               and runs the main job
#   make test   installs the same and runs the test suite
# Both are idempotent: a second run only does what is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.cryoprior-installed

.PHONY: setup relion venv demo test lint clean

setup: relion venv

relion:
	@if command -v relion_refine_mpi >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then \
		echo "RELION found: $$(command -v relion_refine_mpi)"; \
	else \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y relion; \
	fi

venv: $(STAMP)

# torch first, pinned, so that nothing pulls a newer torch with CUDA
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/cryoprior demo --workdir demo_run

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) demo_run .pytest_cache
