"""The memory each engine reserves: vLLM's share of the GPU, its KV blocks and profiling run,
llama.cpp's compute buffer. Expected figures are hand calculations from the sources in
profiles/runtimes.toml, not the planner's output pinned."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from compress.planner import load_gpu, load_model_spec, make_plan, predict_variant

runner = CliRunner()
GIB = 2**30


def _vllm_13b(**kw):
    return predict_variant(load_model_spec("llama-2-13b"), load_gpu("h100-sxm"), "fp16", 2048, 32,
                           runtime="vllm", headroom_gib=0.5, **kw)


def test_vllm_13b_batch_32_needs_more_than_its_default_share():
    # Budget 0.9 x 79.65 GiB = 71.69 GiB. Inside it: fp16 weights 26.03e9 B = 24.24 GiB, the
    # profiling pass of 8,192 tokens 8192 x (2 x 5120 + 2 x 13824) x 2 B = 0.58 GiB plus the
    # sampler's 2 x 256 x 32,000 x 4 B = 0.06 GiB, non-torch 0.25 GiB. KV per sequence of
    # 2,048 tokens: 2 x 40 layers x 5120 x 2 B x 2048 = 1.5625 GiB, so
    # (71.69 - 24.24 - 0.64 - 0.25) / 1.5625 = 29.8: 29 sequences, not 32 (ridgepoint,
    # vramscout and aiconfigurator say about 28).
    c = _vllm_13b()
    assert not c["fits"] and c["reason_codes"][0] == "too_big"
    assert c["memory"]["engine_budget_gib"] == pytest.approx(0.9 * 79.65, abs=0.01)
    assert 27 <= c["predicted"]["max_batch"] <= 30
    assert "--gpu-memory-utilization" in c["reasons"][0] and "sequences of 2048 tokens fit" in c["reasons"][0]
    # At 0.95 the budget is 75.67 GiB and 75.1 GiB is needed: it fits, all 32 sequences.
    wider = _vllm_13b(memory_fraction=0.95)
    assert wider["fits"] and wider["predicted"]["max_batch"] >= 32
    assert 0 < wider["margin_gib"] < 1.0


def test_the_engine_share_does_not_touch_engines_without_one():
    # transformers has no share: its budget is the device less the headroom, as before.
    c = predict_variant(load_model_spec("llama-2-7b"), load_gpu("h100-sxm"), "fp16", runtime="transformers",
                        headroom_gib=0.5, memory_fraction=0.5)
    assert c["memory"]["engine_budget_gib"] == pytest.approx(79.65 - 0.5)
    assert "engine_memory_fraction" not in c["memory"] and c["memory"]["outside_budget_gib"] == 0


def test_vllm_holds_the_kv_cache_in_16_token_blocks():
    spec, gpu = load_model_spec("llama-2-7b"), load_gpu("h100-sxm")
    kv = {ctx: predict_variant(spec, gpu, "fp16", ctx, runtime="vllm")["memory"]["kv_cache_gib"]
          for ctx in (2048, 2049, 2064)}
    # 2,049 tokens take 129 blocks = 2,064 tokens (0.5 MiB each for Llama-2-7B fp16)
    assert kv[2049] == kv[2064] > kv[2048]
    assert kv[2064] - kv[2048] == pytest.approx(16 * 0.5 / 1024, abs=1e-3)
    eager = predict_variant(spec, gpu, "fp16", 2049, runtime="transformers")["memory"]["kv_cache_gib"]
    assert eager < kv[2049]


def test_vllm_70b_fp16_on_two_h100_keeps_the_peers_context():
    # Llama-3.1-70B fp16 over 2 x H100: 65.7 GiB of weights a GPU in a 71.7 GiB budget leaves
    # ~4.6 GiB of KV a GPU at 160 KiB a token (80 layers x 8 KV heads x 128 x 2 x 2 B / 2
    # GPUs): about 29k tokens. Peers give 21-33k; the whole device (no share) gave 70,885.
    c = predict_variant(load_model_spec("llama-3.1-70b"), load_gpu("h100-sxm"), "fp16", gpus=2, runtime="vllm",
                        headroom_gib=0.5)
    assert 21_000 <= c["predicted"]["max_context"] <= 33_000


def test_llama_cpp_reserves_the_logits_of_one_ubatch():
    # n_ubatch 512 x vocab 128,256 x 4 B = 250.5 MiB, the bulk of the ~258 MiB "CUDA0 compute
    # buffer size" llama.cpp prints loading Llama-3-8B.
    c = predict_variant(load_model_spec("llama-3.1-8b"), load_gpu("rtx-4090"), "q4_k_m", runtime="llama.cpp")
    assert c["memory"]["buffers_gib"] * 1024 == pytest.approx(250.5, abs=0.5)


def test_plan_option_note_and_json():
    result = runner.invoke(cli.app, ["plan", "-m", "llama-2-13b", "-g", "h100-sxm", "--batch", "32", "--context", "2048",
                                     "--engine", "vllm", "--gpu-memory-utilization", "0.95", "-f", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["options"]["gpu_memory_utilization"] == 0.95
    fp16 = next(c for c in plan["candidates"] if c["variant"] == "fp16")
    assert fp16["fits"] and fp16["memory"]["engine_memory_fraction"] == 0.95
    assert any("vllm uses 0.95 of each GPU" in n for n in plan["notes"])
    default = make_plan("llama-2-13b", "h100-sxm", batch=32, context=2048, engine="vllm")
    assert not default.candidate("fp16")["fits"]


@pytest.mark.parametrize("value", ["0", "1.2"])
def test_bad_share_is_refused(value):
    result = runner.invoke(cli.app, ["plan", "-m", "llama-2-7b", "-g", "h100-sxm", "--gpu-memory-utilization", value])
    assert "--gpu-memory-utilization" in str(result.exception) and "from 0 to 1" in str(result.exception)


def test_bad_share_is_one_line_and_exit_2():
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, str(root / "cli.py"), "plan", "-m", "llama-2-7b", "-g", "h100-sxm",
                             "--gpu-memory-utilization", "-0.1"], capture_output=True, text=True, cwd=root)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "got -0.1" in result.stderr


def test_serving_command_carries_a_share_off_vllms_default():
    from compress.planner.serving import serving_command

    wide = make_plan("llama-2-13b", "h100-sxm", batch=32, context=2048, engine="vllm", gpu_memory_utilization=0.95)
    assert "--gpu-memory-utilization 0.95" in serving_command("llama-2-13b", wide.candidate("fp16"), 2048, 32)
    default = make_plan("llama-2-13b", "h100-sxm", batch=32, context=2048, engine="vllm")
    assert "--gpu-memory-utilization" not in serving_command("llama-2-13b", default.candidate("fp8"), 2048, 32)
