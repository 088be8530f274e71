# The two set-up commands of the README.  Both install first (idempotent).
PYTHON ?= python3.11
VENV_PY := tools/venv/bin/python

.PHONY: install demo test bench

install:
	PYTHON=$(PYTHON) bash tools/install.sh

# Main job: the embedded mini_dld recipe, all stages, on the CPU.
demo: install
	cd egs2/mini_dld/asr1 && ./run.sh

# Unit tests plus the tiny end-to-end recipe run.
test: install
	$(VENV_PY) -m pytest -q

bench: install
	$(VENV_PY) bench/encoder_depth.py --json bench/results/encoder_depth.json
