"""The shared tiny model loads and its tokenizer round-trips text."""

from compress.loading import load_causal_lm, load_tokenizer


def test_tiny_llama_generates(tiny_llama):
    import torch

    tokenizer = load_tokenizer(tiny_llama)
    ids = tokenizer("The history of anarchism", return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == "The history of anarchism"
    model = load_causal_lm(tiny_llama)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 5


def test_the_suite_cache_is_its_own(tmp_path_factory):
    from compress.paths import cache_dir

    base = tmp_path_factory.getbasetemp().resolve()
    assert base in cache_dir("artifacts").resolve().parents
    # only the dequantized default model is shared with the user's cache
    assert cache_dir("dequantized").is_symlink() and base not in cache_dir("dequantized").resolve().parents
