"""The same code on CUDA: device choice, NVML detection, a method and a sweep on the GPU.

Marked ``gpu``: skipped where torch sees no CUDA device (tests/conftest.py).
"""

import pytest

from compress import apply, results, sources, variants
from compress.measure import sweep
from compress.measure.settings import BenchSettings

pytestmark = pytest.mark.gpu


def test_auto_picks_cuda_and_the_planner_detects_the_gpu():
    from compress.loading import pick_device
    from compress.planner import load_gpu

    assert pick_device("auto") == "cuda"
    gpu = load_gpu("auto")
    assert gpu.kind != "cpu", "NVML found a GPU, so the plan must not fall back to the host"


def test_nf4_applies_and_generates_on_cuda(tiny_llama, tmp_path):
    from compress.apply.loaders import load_artifact

    manifest = apply.run(sources.resolve(str(tiny_llama)), variants.parse("nf4"), tmp_path / "nf4",
                         apply.Options(device="cuda", calib_samples=4, calib_seq_len=64), log=lambda line: None)
    assert manifest["device"] == "cuda" and manifest["peak_memory_bytes"] > 0
    model, tokenizer = load_artifact(tmp_path / "nf4", "cuda")
    prompt = tokenizer("The history of", return_tensors="pt").to("cuda")
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 4


def test_sweep_on_cuda_records_cuda_peak_memory(tiny_llama, tmp_path):
    settings = BenchSettings(ppl_tokens=256, ppl_context=128, ppl_stride=128, pp_tokens=32, tg_tokens=8, reps=2,
                             warmup=1, batch_sizes=(4,), device="cuda")
    path = tmp_path / "bench.jsonl"
    sweep.run_sweep(sources.resolve(str(tiny_llama)), variants.parse_list("fp16"), settings,
                    apply.Options(device="cuda"), path, tmp_path / "artifacts", log=lambda line: None)
    records = {r["metric"]: r for r in results.load(path) if r["status"] == "ok"}
    assert records["perplexity"]["device"] == "cuda"
    assert records["peak_memory_bytes"]["params"]["measured_as"] == "CUDA peak allocated"
    assert records["decode_tok_s"]["value"] > 0 and records["throughput_tok_s"]["value"] > 0
