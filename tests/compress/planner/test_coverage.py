"""Current devices, custom devices, NVFP4/MXFP4, capacity per candidate, engine prefill chunks,
decode at the planned depth, and alternatives in order of least change."""

import pytest

from compress.errors import UserInputError
from compress.planner import formats, hardware, load_gpu, load_model_spec, make_plan, predict_variant
from compress.model.tensors import Tensor
from compress.planner.hardware import custom_gpu, kernel_support, list_gpus

NEW = ["b200", "gb200", "rtx-5090", "rtx-pro-6000", "h20", "l40", "a40", "mi300x", "mi325x",
       "m3-max", "m4-max", "m2-ultra"]


def test_current_devices_are_in_the_catalog():
    names = {g.name for g in list_gpus()}
    assert set(NEW) <= names
    assert load_gpu("mi300x").backend == "rocm" and load_gpu("m3-max").backend == "metal"
    # datasheet figures: B200 8 TB/s, MI300X 192 GB at 5.3 TB/s, RTX 5090 32 GB at 1,792 GB/s
    assert load_gpu("b200").memory_bandwidth_gbs == 8000 and load_gpu("mi300x").memory_gib == 192
    assert load_gpu("rtx-5090").memory_bandwidth_gbs == 1792
    # Apple: 75% of unified memory for the GPU (Metal's recommendedMaxWorkingSetSize above 36 GB)
    assert load_gpu("m2-ultra").usable_memory_gib == pytest.approx(0.75 * 192)


@pytest.mark.parametrize("name,fp8,nvfp4", [("b200", True, True), ("rtx-5090", True, True), ("h100-sxm", True, False),
                                            ("mi300x", True, False), ("a40", False, False), ("m3-max", False, False)])
def test_which_devices_run_fp8_and_fp4(name, fp8, nvfp4):
    gpu = load_gpu(name)
    assert kernel_support(gpu, "fp8")[0] == fp8
    assert kernel_support(gpu, "nvfp4")[0] == nvfp4
    plan_names = {c["variant"] for c in make_plan("llama-3.2-1b", gpu).candidates}
    assert ("nvfp4" in plan_names) == nvfp4 and ("mxfp4" in plan_names) == nvfp4


def test_rocm_and_metal_engines():
    mi = make_plan("llama-3.2-1b", "mi300x")
    assert mi.candidate("gptq-4-g128")["runtime"] == "vllm" and mi.candidate("gptq-4-g128")["supported"]
    assert mi.candidate("q4_k_m")["runtime"] == "llama.cpp" and mi.candidate("q4_k_m")["supported"]
    mac = make_plan("llama-3.2-1b", "m3-max")
    assert mac.candidate("q4_k_m")["supported"] and mac.candidate("bf16")["runtime"] == "mlx"
    assert not mac.candidate("gptq-4-g128")["supported"]  # GPTQ kernels are CUDA/ROCm only


def test_microscaling_bits_per_weight_from_block_layouts():
    # NVFP4: 16 E2M1 values (8 bytes) + 1 E4M3 scale = 9 bytes / 16 weights = 4.5 bits, plus a
    # 4-byte tensor scale; MXFP4: 32 values (16 bytes) + 1 E8M0 scale = 17 / 32 = 4.25 bits.
    t = Tensor("ffn_up", 0, 4096, 4096)
    spec = load_model_spec("llama-2-7b")
    from compress import variants
    assert formats.tensor_bytes(t, variants.parse("nvfp4").steps[0], spec) == 4096 * 4096 * 9 // 16 + 4
    assert formats.tensor_bytes(t, variants.parse("mxfp4").steps[0], spec) == 4096 * 4096 * 17 // 32


def test_seventy_b_answers_on_new_devices():
    for gpu in ("b200", "mi300x", "rtx-5090", custom_gpu(24, 1000)):
        plan = make_plan("llama-3.1-70b", gpu)
        assert plan.recommended or plan.alternatives
        assert all("max_context" in c["predicted"] and "max_batch" in c["predicted"] for c in plan.candidates)


def test_custom_device_and_profile_files(tmp_path, monkeypatch):
    gpu = custom_gpu(24, 1000, 150, compute_capability="8.9")
    assert gpu.usable_memory_gib == 24 and gpu.peak_tflops("bf16") == 150 and kernel_support(gpu, "fp8")[0]
    with pytest.raises(UserInputError, match="--bandwidth"):
        custom_gpu(24, 0)
    device = tmp_path / "my-card.toml"
    device.write_text('name = "my-card"\nmemory_gib = 20.0\nmemory_bandwidth_gbs = 600.0\ncompute_capability = "8.6"\n'
                      '[tflops]\nfp16 = 70.0\n')
    assert load_gpu(str(device)).memory_bandwidth_gbs == 600
    (tmp_path / "broken.toml").write_text('name = "broken"\n')
    with pytest.raises(UserInputError, match="lacks memory_gib"):
        load_gpu(str(tmp_path / "broken.toml"))
    # the user's folder: listed and loaded by name, and it overrides a catalog file of the same name
    folder = tmp_path / "gpus"
    folder.mkdir()
    (folder / "t4.toml").write_text('name = "t4"\nmemory_gib = 16.0\nusable_memory_gib = 15.0\n'
                                    'memory_bandwidth_gbs = 123.0\ncompute_capability = "7.5"\n')
    (folder / "my-card.toml").write_text(device.read_text())
    monkeypatch.setenv("COMPRESS_USER_GPUS", str(folder))
    assert load_gpu("t4").memory_bandwidth_gbs == 123 and load_gpu("my-card").memory_gib == 20
    assert "my-card" in hardware.gpu_names()


@pytest.mark.parametrize(("body", "message"), [
    ("tflops = 70.0\n", "tflops must be a table of dense TFLOPS by type"),
    ("memory_gib = 1e30\n", r"memory_gib must be a number above 0 and at most 1,048,576, got 1e\+30"),
    ('memory_bandwidth_gbs = "fast"\n', "memory_bandwidth_gbs must be a number above 0"),
    ("memory_bandwidth_gbs = nan\n", "memory_bandwidth_gbs must be a number above 0"),
    ("[tflops]\nfp16 = inf\n", "tflops.fp16 must be a number above 0"),
    ("[tflops]\nfp16 = true\n", "tflops.fp16 must be a number above 0"),
    ("name = 7\n", "name must be text, got 7"),
])
def test_a_device_file_has_the_same_bounds_as_the_options(tmp_path, body, message):
    base = {"name": '"my-card"', "memory_gib": "20.0", "memory_bandwidth_gbs": "600.0"}
    lines = [f"{key} = {value}" for key, value in base.items() if not body.startswith(key + " ")]
    device = tmp_path / "my-card.toml"
    device.write_text("\n".join(lines) + "\n" + body)
    with pytest.raises(UserInputError, match=message) as err:
        load_gpu(str(device))
    assert "my-card.toml" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="--gpu-memory must be at most 1,048,576"):
        custom_gpu(1e30, 100)


def test_max_context_and_max_batch_are_the_fitting_edges():
    gpu = load_gpu("rtx-4090")
    p = predict_variant(load_model_spec("llama-3.1-8b"), gpu, "q4_k_m", context=8192, batch=4, headroom_gib=0.5)
    usable = gpu.usable_memory_gib - 0.5
    spec = load_model_spec("llama-3.1-8b")
    top_c, top_b = p["predicted"]["max_context"], p["predicted"]["max_batch"]
    assert 8192 < top_c < spec.max_context and top_b > 4

    def peak(context, batch):
        return predict_variant(spec, gpu, "q4_k_m", context=context, batch=batch)["memory"]["total_gib"]

    # peaks are rounded to 1 MiB; 16 more tokens at batch 4 add 8 MiB of KV cache
    assert peak(top_c, 4) <= usable < peak(top_c + 16, 4)
    assert peak(8192, top_b) <= usable < peak(8192, top_b + 1)


def test_transformers_prefills_the_whole_prompt_13b_batch_32_does_not_fit():
    # Llama-2-13B fp16 on an H100 at batch 32, context 2048: weights 24.2 GiB + KV 50.0 GiB
    # (2 x 40 layers x 5120 x 2 B x 2048 x 32) + the prefill of all 65,536 prompt tokens at once:
    # 65536 x (2 x 5120 + 2 x 13824) x 2 B = 4.63 GiB (not 1.2 GiB for a 512-token chunk).
    c = make_plan("llama-2-13b", "h100-sxm", batch=32, context=2048, engine="transformers").candidate("fp16")
    assert c["runtime"] == "transformers" and not c["fits"]
    assert c["memory"]["activations_gib"] == pytest.approx(4.63, abs=0.01)
    assert c["predicted"]["prefill_chunk_tokens"] == 32 * 2048
    plan = make_plan("llama-2-13b", "h100-sxm", batch=32, context=2048)
    assert plan.candidate("q8_0")["predicted"]["prefill_chunk_tokens"] == 512  # llama.cpp n_ubatch
    # vLLM's chunked prefill holds 8,192 tokens a step (0.58 GiB); it fits only with a larger
    # share of the GPU than vLLM's default 0.9 (tests/compress/planner/test_engine_memory.py)
    vllm = make_plan("llama-2-13b", "h100-sxm", batch=32, context=2048, gpu_memory_utilization=0.95).candidate("fp16")
    assert vllm["runtime"] == "vllm" and vllm["predicted"]["prefill_chunk_tokens"] == 8192 and vllm["fits"]


def test_decode_at_the_planned_depth_and_batch_ttft():
    spec, gpu = load_model_spec("llama-3.1-8b"), load_gpu("h100-sxm")
    short = predict_variant(spec, gpu, "fp16", context=512)["predicted"]
    long = predict_variant(spec, gpu, "fp16", context=32768)["predicted"]
    assert long["decode_tok_s"] < short["decode_tok_s"] and long["decode_cache_tokens"] == 32768
    batch = predict_variant(spec, gpu, "fp16", context=4096, batch=16)["predicted"]
    assert batch["ttft_ms"] > batch["ttft_single_ms"] and "16 prompts" in batch["ttft_semantics"]


def test_alternatives_in_order_of_least_change():
    plan = make_plan("llama-3.1-70b", "h100-sxm", context=131072, batch=2)
    kinds = [a["kind"] for a in plan.alternatives]
    assert kinds[0] == "kv_dtype" and kinds.index("context") < kinds.index("gpus") < kinds.index("gpu") \
        < kinds.index("model")
    assert plan.alternatives[0]["value"] in ("fp8", "q8_0", "q4_0")


def test_context_sweep_and_default_model():
    plan = make_plan("default", "cpu", sweep=True)
    assert plan.model.name == "smollm2-135m"
    rows = plan.to_dict()["context_sweep"]
    assert [r["context"] for r in rows][:3] == [512, 1024, 2048] and rows[-1]["context"] == plan.model.max_context
    # one candidate across the sweep: more context, more memory, slower decode
    q4 = [r["candidates"]["q4_k_m"] for r in rows]
    assert [c["peak_memory_gib"] for c in q4] == sorted(c["peak_memory_gib"] for c in q4)
    assert [c["decode_tok_s"] for c in q4] == sorted((c["decode_tok_s"] for c in q4), reverse=True)
