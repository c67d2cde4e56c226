"""The build and serve lines name the model apply opens and the paths apply writes."""

from __future__ import annotations

from compress.planner.serving import apply_command, artifact_name, model_source, serving_command


def test_the_default_model_is_named_as_apply_names_it():
    source = model_source({"name": "smollm2-135m", "origin": "catalog", "hf_id": "HuggingFaceTB/SmolLM2-135M"})
    assert (source.model_arg, source.name, source.download) == ("default", "smollm2-135m-instruct", None)
    q8 = {"variant": "q8_0", "runtime": "llama.cpp", "config": {"qtype": "q8_0"}, "kernel": "llama.cpp-cpu"}
    # compress.apply.gguf writes <model>.<TYPE>.gguf, the type in capitals.
    assert artifact_name(source.name, q8) == "artifacts/smollm2-135m-instruct-q8_0/smollm2-135m-instruct.Q8_0.gguf"
    assert apply_command(source, q8) == ("compress apply --model default --method q8_0 "
                                         "--out-dir artifacts/smollm2-135m-instruct-q8_0")
    assert serving_command(source.name, q8, 4096, on_gpu=False) == (
        "llama-server -m artifacts/smollm2-135m-instruct-q8_0/smollm2-135m-instruct.Q8_0.gguf -c 4096")


def test_a_local_model_is_passed_as_it_was_planned(tmp_path):
    folder = tmp_path / "my model"
    folder.mkdir()
    source = model_source({"name": "my model", "origin": "config.json", "path": str(folder / "config.json")})
    assert (source.model_arg, source.name, source.download) == (str(folder), "my model", None)
    assert f"--model '{folder}'" in apply_command(source, {"variant": "nf4"})
    gguf = model_source({"name": "x", "origin": "gguf", "path": "/models/Small.Q4_1.gguf"})
    assert (gguf.model_arg, gguf.name) == ("/models/Small.Q4_1.gguf", "Small.Q4_1")


def test_a_catalog_model_without_weights_is_downloaded_first():
    source = model_source({"name": "llama-2-7b", "origin": "catalog", "hf_id": "meta-llama/Llama-2-7b-hf"})
    assert source.download == "hf download meta-llama/Llama-2-7b-hf --local-dir models/llama-2-7b"
    assert (source.model_arg, source.name) == ("models/llama-2-7b", "llama-2-7b")
