"""What each runtime adds to a process's resident memory on the CPU, step by step.

The planner's host-buffer constants (profiles/runtimes.toml, `cpu_*` keys of each runtime)
come from this script. Each step runs in a fresh process that first reaches the state
`compress bench` is in before its memory window opens (torch and transformers imported, the
default model's tokenizer loaded), then resets the kernel's peak-RSS counter
(/proc/self/clear_refs, "5") and reports peak RSS (VmHWM) above that state after:

  import-llama_cpp      `import llama_cpp`
  llama.cpp-load        loading the default model's GGUF (n_ctx 520, n_batch 520, n_ubatch 512,
                        logits_all, as the bench's llama.cpp runtime does)
  llama.cpp-ppl512      the same, then scoring one 512-token window (all logits kept)
  import-bitsandbytes   `import bitsandbytes`
  import-gptqmodel      `import gptqmodel`
  transformers-fp32     loading the default model's fp32 Hugging Face folder with the bench's
                        loader, then one 512-token forward pass with logits for every position

    python bench/host_memory.py [step ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PRELUDE = """
import sys, os
sys.path.insert(0, {root!r})
import torch, transformers
from compress import sources
from compress.loading import hf_checkpoint, load_tokenizer
src = sources.resolve("default")
folder = hf_checkpoint(src)
tok = load_tokenizer(folder)
ids = list(range(100, 612))
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS:")
"""

STEPS = {
    "import-llama_cpp": "import llama_cpp",
    "llama.cpp-load": ("from compress.llamacpp import load_llama\n"
                       "llm = load_llama(src.path, n_ctx=520, n_threads=2, logits_all=True, n_batch=520, n_ubatch=512)"),
    "llama.cpp-ppl512": ("from compress.llamacpp import load_llama\nimport numpy as np\n"
                         "llm = load_llama(src.path, n_ctx=520, n_threads=2, logits_all=True, n_batch=520, n_ubatch=512)\n"
                         "llm.reset(); llm.eval(ids); x = np.asarray(llm.scores[:512])"),
    "import-bitsandbytes": "import bitsandbytes",
    "import-gptqmodel": "import gptqmodel",
    "transformers-fp32": ("from compress.apply.loaders import load_artifact\n"
                          "model, _ = load_artifact(folder, 'cpu')\n"
                          "with torch.inference_mode():\n"
                          "    logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()"),
}


def run(step: str) -> dict[str, float]:
    code = _PRELUDE.format(root=str(ROOT)) + STEPS[step] + (
        "\nprint('RESULT', status('VmHWM:') - base, base)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    added, base = map(int, line.split()[1:])
    return {"added_mib": round(added / 2**20, 1), "baseline_mib": round(base / 2**20, 1)}


def main() -> None:
    steps = sys.argv[1:] or list(STEPS)
    for step in steps:
        print(json.dumps({"step": step, **run(step)}), flush=True)


if __name__ == "__main__":
    main()
