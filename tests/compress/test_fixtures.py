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
