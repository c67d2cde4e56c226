"""The planner's engine rules: which engine and kernel serve each format, and how fast.

Every expectation cites where it comes from; none is the planner's own output pinned.
"""

import shutil

import pytest

from compress.errors import UserInputError
from compress.planner import load_gpu, load_model_spec, make_plan, predict_variant
from compress.planner import profiles
from compress.planner.predict import batch_factor
from compress.review import review_data


def _predict(model, gpu, variant, **kw):
    return predict_variant(load_model_spec(model), load_gpu(gpu), variant, **kw)


def test_fp16_llama2_7b_on_h100_decodes_at_serving_engine_speed():
    # 13.2 GB of fp16 weights at 3.35 TB/s is a ~250 tok/s roofline; serving engines reach
    # 50-75% of it (PyTorch "GPT, Fast": 71% of A100 bandwidth with CUDA graphs), so vLLM
    # decodes Llama-2-7B fp16 at batch 1 in roughly 120-200 tok/s. Eager transformers on the
    # same GPU is host-bound (measured 43.4 ms a token, profiles/runtimes.toml): under 40 tok/s.
    vllm = _predict("llama-2-7b", "h100-sxm", "fp16")
    assert vllm["runtime"] == "vllm" and vllm["kernel"] == "dense"
    assert 120 <= vllm["predicted"]["decode_tok_s"] <= 200
    eager = _predict("llama-2-7b", "h100-sxm", "fp16", runtime="transformers")
    assert eager["predicted"]["decode_tok_s"] < 40


def test_each_format_gets_its_engine_and_kernel_on_a_datacenter_gpu():
    h100 = make_plan("llama-2-7b", "h100-sxm")
    # vLLM picks Machete for GPTQ on Hopper (MacheteLinearKernel, min capability 90) and
    # Marlin on Ampere (gptq_marlin, min capability 80); AWQ goes through awq_marlin.
    assert (h100.candidate("gptq-4-g128")["runtime"], h100.candidate("gptq-4-g128")["kernel"]) == ("vllm", "machete")
    assert make_plan("llama-2-7b", "a100-80gb-sxm").candidate("gptq-4-g128")["kernel"] == "marlin"
    assert h100.candidate("awq-4-g128")["kernel"] == "awq_marlin"
    # GGUF is llama.cpp's format; bitsandbytes runs in transformers only.
    assert h100.candidate("q4_k_m")["runtime"] == "llama.cpp"
    assert h100.candidate("nf4")["runtime"] == "transformers"


def test_engine_option_restricts_the_candidates():
    only_gguf = make_plan("llama-2-7b", "h100-sxm", engine="llama.cpp")
    assert {c["runtime"] for c in only_gguf.candidates} == {"llama.cpp"}
    assert all(c["method"] == "gguf" for c in only_gguf.candidates)
    eager = make_plan("llama-2-7b", "h100-sxm", engine="transformers")
    assert {c["runtime"] for c in eager.candidates} == {"transformers"}
    assert "q4_k_m" not in [c["variant"] for c in eager.candidates]  # transformers does not serve GGUF here
    with pytest.raises(UserInputError, match="unknown engine"):
        make_plan("llama-2-7b", "h100-sxm", engine="tensorrt")
    with pytest.raises(UserInputError, match="serves none"):
        make_plan("llama-2-7b", "h100-sxm", engine="onnxruntime")  # ONNX is a CPU candidate only


def test_batch_changes_what_is_fastest():
    spec, h100 = load_model_spec("llama-2-7b"), load_gpu("h100-sxm")

    def tok_s(variant, batch):
        # at a 512-token cache, where the weights are most of what a decode step reads
        return predict_variant(spec, h100, variant, context=512, batch=batch)["predicted"]["decode_tok_s"]

    # MARLIN (Frantar et al., arXiv:2408.11743): close to the 4x ideal up to batch 16-32 and
    # up to 2.8x end to end in vLLM, so W4A16 beats fp16 by well over 2x at batch 1 and still
    # clearly at batch 16.
    assert tok_s("gptq-4-g128", 1) > 2.0 * tok_s("fp16", 1)
    assert tok_s("gptq-4-g128", 16) > 1.3 * tok_s("fp16", 16)
    # llama.cpp batched decoding scales sub-linearly (PR #3776: 6.9x at 16 sequences), vLLM's
    # continuous batching nearly linearly: at batch 1 a small GGUF file decodes about as fast
    # as 4-bit Marlin, at batch 16 every 4-bit vLLM candidate is ahead of every GGUF one.
    assert tok_s("q4_k_m", 1) > 0.75 * tok_s("gptq-4-g128", 1)
    gguf_16 = max(tok_s(v, 16) for v in ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k"))
    assert min(tok_s("gptq-4-g128", 16), tok_s("awq-4-g128", 16)) > gguf_16


def test_batch_factor_interpolates_the_published_points():
    # runtimes.toml [batch_efficiency."llama.cpp"] from PR #3776: 0.53 at 16 sequences, 0.30 at 64.
    assert batch_factor("llama.cpp", 1) == 1.0
    assert batch_factor("llama.cpp", 16) == pytest.approx(0.53)
    assert 0.30 < batch_factor("llama.cpp", 32) < 0.53
    assert batch_factor("llama.cpp", 512) == pytest.approx(0.30)
    assert batch_factor("vllm", 256) == 1.0


def test_only_tensor_parallel_engines_sum_bandwidth():
    # vLLM's --tensor-parallel-size splits every layer; llama.cpp's default --split-mode layer
    # puts whole layers on each GPU, so one sequence uses one GPU at a time.
    one = _predict("llama-2-13b", "a100-80gb-sxm", "q8_0")["predicted"]["decode_tok_s"]
    two = _predict("llama-2-13b", "a100-80gb-sxm", "q8_0", gpus=2)
    assert two["predicted"]["decode_tok_s"] <= one and any("one GPU works at a time" in r for r in two["reasons"])
    vllm_one = _predict("llama-2-13b", "a100-80gb-sxm", "fp16")["predicted"]["decode_tok_s"]
    assert _predict("llama-2-13b", "a100-80gb-sxm", "fp16", gpus=2)["predicted"]["decode_tok_s"] > 1.5 * vllm_one


def test_llama3_70b_on_two_h100_is_served_by_vllm():
    # Two H100s serve a 70B model with vLLM tensor parallelism (vLLM docs, distributed
    # serving); the recommendation must be such a pair, not a layer-split GGUF file.
    plan = make_plan("llama-3-70b", "h100-sxm", gpus=2)
    best = plan.candidate(plan.recommended)
    assert best["runtime"] == "vllm" and best["method"] not in ("layerdrop", "distill")


def test_kernel_facts_are_data(tmp_path, monkeypatch):
    # Raising Marlin's minimum compute capability in kernels.toml moves the A100 off Marlin:
    # the rule lives in the profile, not in the code.
    folder = tmp_path / "profiles"
    shutil.copytree(profiles.profiles_dir(), folder)
    rules = (folder / "kernels.toml").read_text()
    (folder / "kernels.toml").write_text(rules.replace('[marlin]\nwhat = "Marlin mixed-precision 4/8-bit GEMM (GPTQ and AWQ checkpoints)"\nmin_cc = "8.0"',
                                                       '[marlin]\nwhat = "Marlin mixed-precision 4/8-bit GEMM (GPTQ and AWQ checkpoints)"\nmin_cc = "9.0"'))
    monkeypatch.setenv("COMPRESS_PROFILES", str(folder))
    moved = _predict("llama-2-7b", "a100-80gb-sxm", "gptq-4-g128")
    assert moved["kernel"] == "gptq_exllamav2" and any("marlin kernel needs sm90+" in r for r in moved["reasons"])


def test_review_names_the_serving_command():
    served = review_data("llama-2-7b", "h100-sxm", [], batch=16)
    chosen = served["plan"]["recommended"]
    assert served["serve"].startswith(f"vllm serve artifacts/llama-2-7b-{chosen} --max-model-len 4096")
    assert "--max-num-seqs 16" in served["serve"]
    two = review_data("llama-3-70b", "h100-sxm", [], gpus=2)
    assert "--tensor-parallel-size 2" in two["serve"]
    # Sized for one stream, the review also names the pair for 16 concurrent sequences; there
    # llama.cpp's sub-linear batched decoding (PR #3776) leaves the serving pick to vLLM.
    single = review_data("llama-2-7b", "h100-sxm", [])
    busy = single.get("serve_busy") or {"runtime": single["plan"]["candidates"][0]["runtime"]}
    assert busy["runtime"] == "vllm"
    assert "serve_busy" not in review_data("smollm2-135m", "cpu", [])  # the host: no serving re-plan
    gguf = review_data("llama-2-7b", "h100-sxm", [], engine="llama.cpp")
    assert gguf["serve"].startswith("llama-server -m artifacts/llama-2-7b-") and gguf["serve"].endswith("-c 4096 -ngl 99")


def test_fp8_runs_w8a8_only_on_sm89_and_weight_only_below():
    # vLLM v0.32.0 docs (features/quantization/fp8): FP8 W8A8 needs compute capability 8.9
    # (Ada, Hopper); Turing/Ampere run FP8 checkpoints weight-only through FP8 Marlin (W8A16);
    # older GPUs have no FP8 kernel at all.
    for gpu in ("h100-sxm", "h200", "l4", "l40s", "rtx-4090"):
        c = _predict("llama-2-7b", gpu, "fp8")
        assert (c["runtime"], c["kernel"], c["supported"]) == ("vllm", "cutlass_fp8", True), gpu
    for gpu in ("a100-80gb-sxm", "a10g", "t4"):
        c = _predict("llama-2-7b", gpu, "fp8")
        assert c["kernel"] == "fp8_marlin" and c["supported"], gpu
        assert any("needs sm89+" in r and "weight-only" in r for r in c["reasons"]), gpu
    v100 = _predict("llama-2-7b", "v100", "fp8")
    assert not v100["supported"] and not v100["fits"] and any("sm75+" in r for r in v100["reasons"])


def test_w8a8_int8_runs_from_turing_and_on_vllms_cpu_backend():
    # vLLM docs (int8_w8a8): INT8 W8A8 on compute capability 7.5 to 9.x; vLLM's CPU backend
    # runs compressed-tensors INT8 W8A8 through oneDNN.
    assert _predict("llama-2-7b", "t4", "w8a8-int8")["kernel"] == "cutlass_w8a8_int8"
    assert not _predict("llama-2-7b", "v100", "w8a8-int8")["supported"]
    cpu = predict_variant(load_model_spec("smollm2-135m"), load_gpu("cpu"), "w8a8-int8")
    assert (cpu["runtime"], cpu["kernel"]) == ("vllm", "onednn_w8a8_int8")
    assert not predict_variant(load_model_spec("smollm2-135m"), load_gpu("cpu"), "fp8")["supported"]


def test_fp8_on_h100_is_faster_than_fp16_and_serves_above_llama_cpp():
    # vLLM FP8 docs: "up to a 1.6x improvement in throughput"; the published H100
    # figures: decode ~1.2x and prefill ~1.46x over bf16. Half the weight bytes, twice the
    # tensor-core peak: both decode and TTFT improve, by less than 2x.
    fp16, fp8 = _predict("llama-2-7b", "h100-sxm", "fp16"), _predict("llama-2-7b", "h100-sxm", "fp8")
    assert 1.1 < fp8["predicted"]["decode_tok_s"] / fp16["predicted"]["decode_tok_s"] < 2.0
    assert 1.1 < fp16["predicted"]["ttft_ms"] / fp8["predicted"]["ttft_ms"] < 2.0
    # Serving many sequences (batch 16), FP8 and 4-bit Marlin/Machete in vLLM out-rank every
    # llama.cpp candidate for throughput (llama.cpp PR #3776 batch scaling, above).
    plan = make_plan("llama-2-7b", "h100-sxm", batch=16, objective="speed")
    ranks = {c["variant"]: c["rank"] for c in plan.candidates}
    worst_vllm = max(ranks[v] for v in ("fp8", "gptq-4-g128", "awq-4-g128"))
    assert all(worst_vllm < c["rank"] for c in plan.candidates if c["runtime"] == "llama.cpp")
    # Prefill is compute bound: W4A16 kernels multiply in 16 bits and gain nothing there,
    # FP8 uses the 2x tensor-core peak (vLLM FP8 docs; MARLIN paper: the 4-bit speedup fades
    # once batches are compute bound), so FP8 reaches the first token sooner while W4A16
    # decodes a single stream faster.
    w4, f8 = _predict("llama-2-7b", "h100-sxm", "gptq-4-g128", batch=16), _predict("llama-2-7b", "h100-sxm", "fp8", batch=16)
    assert f8["predicted"]["ttft_ms"] < 0.8 * w4["predicted"]["ttft_ms"]
    assert _predict("llama-2-7b", "h100-sxm", "gptq-4-g128")["predicted"]["decode_tok_s"] > \
        _predict("llama-2-7b", "h100-sxm", "fp8")["predicted"]["decode_tok_s"]


def test_fp8_artifact_size_is_one_byte_a_weight_plus_row_scales():
    from compress.planner.formats import weight_bytes

    # By hand for Llama-2-7B: 32 layers x (4 x 4096^2 + 3 x 4096 x 11008) = 6,476,005,376
    # linear weights at 1 byte, 1,359,872 output rows with a 2-byte scale, the 32000 x 4096
    # embedding and head and 65 norms of 4096 in fp16: 7,003,545,600 bytes.
    size = weight_bytes(load_model_spec("llama-2-7b"), "fp8")
    assert size == 7_003_545_600
    assert weight_bytes(load_model_spec("llama-2-7b"), "w8a8-int8") == size


def test_w8a8_and_fp8_quality_come_from_their_papers():
    # SmoothQuant Table 7: Llama-2-7B WikiText-2 5.474 -> 5.515 (+0.75%); torchao PR #3394:
    # Llama-3.1-8B float8 rowwise 7.5472 -> 7.62 (+0.96%).
    w8a8 = _predict("llama-2-7b", "a100-80gb-sxm", "w8a8-int8")["predicted"]
    assert w8a8["ppl_delta_pct"] == pytest.approx(100 * (5.515 / 5.474 - 1), abs=0.01)
    assert "SmoothQuant" in w8a8["quality_source"]
    fp8 = _predict("llama-3.1-8b", "h100-sxm", "fp8")["predicted"]
    assert fp8["ppl_delta_pct"] == pytest.approx(100 * (7.62 / 7.5472 - 1), abs=0.01)


def test_marlin_prefill_is_slower_than_fp16_machete_is_not():
    # vLLM PR #2497: Marlin runs compute-bound GEMMs at 0.74x of fp16 and long prompts reach
    # the first token ~40% later; Machete matches fp16 when compute bound (Machete blog).
    a100_fp16, a100_w4 = _predict("llama-2-7b", "a100-80gb-sxm", "fp16"), _predict("llama-2-7b", "a100-80gb-sxm", "gptq-4-g128")
    assert a100_w4["kernel"] == "marlin"
    assert 1.2 < a100_w4["predicted"]["ttft_ms"] / a100_fp16["predicted"]["ttft_ms"] < 1.5
    h100_fp16, h100_w4 = _predict("llama-2-7b", "h100-sxm", "fp16"), _predict("llama-2-7b", "h100-sxm", "gptq-4-g128")
    assert h100_w4["kernel"] == "machete"
    assert h100_w4["predicted"]["ttft_ms"] == pytest.approx(h100_fp16["predicted"]["ttft_ms"], rel=0.05)


def test_kernels_dropped_by_a_later_architecture():
    # vLLM docs (int8_w8a8): "INT8 is not supported on compute capability >= 10.0 (e.g., RTX 6000
    # Blackwell). Use FP8 quantization instead." A Blackwell-class device built here from the
    # B200 datasheet's headline figures (sm100, 8 TB/s).
    from compress.planner.hardware import GpuProfile

    blackwell = GpuProfile(name="sm100", display_name="sm100 test GPU", compute_capability="10.0", memory_gib=180,
                           usable_memory_gib=178, memory_bandwidth_gbs=8000,
                           tflops={"fp16": 2250, "bf16": 2250, "fp8": 4500, "int8": 4500})
    spec = load_model_spec("llama-2-7b")
    int8 = predict_variant(spec, blackwell, "w8a8-int8")
    assert not int8["supported"] and any("not built for sm100+" in r for r in int8["reasons"])
    assert predict_variant(spec, blackwell, "fp8")["kernel"] == "cutlass_fp8"
