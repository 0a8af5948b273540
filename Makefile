# Everything a fresh machine (Python 3.11+) needs: `make search` runs the default search,
# `make test` runs ruff and the whole test suite. Both create .venv and install on first use;
# later runs skip the install unless pyproject.toml or constraints.txt changed.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel we test with. A GPU user overrides it, e.g. `make install TORCH_SPEC=torch==2.13.0`
# with their CUDA index configured for pip.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.evo-installed

.PHONY: install test search lint clean-venv

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt "$(TORCH_SPEC)" -e ".[dev]"
	@# Our tools send nothing anywhere: opt out of OpenVINO's telemetry after every install.
	$(BIN)/opt_in_out --opt_out >/dev/null 2>&1 || true
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

search: install
	$(BIN)/evo search

clean-venv:
	rm -rf $(VENV)
