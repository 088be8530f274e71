# The two set-up commands of the README.  Both install first: tools/install.sh
# installs the tested lock of the Python line ($PYTHON, default python3.11;
# PYTHON=python3.12 for espnet 202611) and checks the environment.
VENV_PY := tools/venv/bin/python

.PHONY: install demo test bench lock

install:
	bash tools/install.sh

# Main job: the embedded mini_dld recipe, all stages, on the CPU.
demo: install
	cd egs2/mini_dld/asr1 && ./run.sh

# Regenerate tools/lock/py3.X.txt from the newest releases setup.py admits;
# commit it only after `make test` passes with it (README: Installing).
lock:
	bash tools/update_lock.sh

# Unit tests plus the tiny end-to-end recipe run.
test: install
	$(VENV_PY) -m pytest -q

# The benchmarks of the README's Results on the embedded corpus (about 1.5 h on
# 2 cores); the FSDD figures: the commands under "Reproducing" in the README.
MINI := egs2/mini_dld/asr1
bench: install
	$(VENV_PY) bench/encoder_depth.py --json bench/results/encoder_depth.json
	$(VENV_PY) bench/accuracy_depth.py --recipe $(MINI) --seeds 0 1 2 --run --json bench/results/accuracy_mini_dld.json
	$(VENV_PY) bench/training_cost.py --recipe $(MINI) --seeds 0 1 2 --threads 1 --json bench/results/training_cost_mini_dld.json
	$(VENV_PY) bench/decode_cost.py --model $(MINI)/exp/asr_dld_seed0/asr_model_dld.zip \
		--wav_scp $(MINI)/dump/raw/test/wav.scp --max_utts 40 --json bench/results/decode_cost_mini_dld.json
	$(VENV_PY) bench/depth_policy.py --recipe $(MINI) --seeds 0 1 2 --students dld ld \
		--json bench/results/depth_policy_mini_dld.json
	$(VENV_PY) bench/export_cost.py --model $(MINI)/exp/asr_dld_seed0/asr_model_dld.zip \
		--data $(MINI)/dump/raw/test --json bench/results/export_mini_dld.json
	$(VENV_PY) bench/accuracy_depth.py --recipe $(MINI) --seeds 0 1 2 --run --tag _cached --ld_tag "" \
		--run_args "--teacher_posteriors cached" --json bench/results/ablation_mini_dld_cached.json
	$(VENV_PY) bench/teacher_cache_cost.py --recipe $(MINI) --seeds 0 1 2 --threads 1 \
		--online_json bench/results/accuracy_mini_dld.json --cached_json bench/results/ablation_mini_dld_cached.json \
		--json bench/results/teacher_cache_cost_mini_dld.json
