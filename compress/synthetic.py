"""Random-weight checkpoints of catalog architectures: ``--model random:<name>``.

Speed and memory depend on a model's shapes, not on its weight values, so a
checkpoint with random weights of, say, Llama-2-7B's architecture lets
``compress bench`` check the planner's predictions of latency, throughput and
peak memory on any machine without downloading weights. Perplexity of such a
model means nothing; the sweep records it all the same, and the model's name
ends in ``-random`` so no one mistakes it for the real one.

The tokenizer is byte-level with no merges (one token per byte), which needs no
training text. Checkpoints are cached by name and dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compress import arch
from compress.errors import UnsupportedError
from compress.fsutil import atomic_dir
from compress.paths import cache_dir

PREFIX = "random:"
#: planner architecture → the transformers config class that builds it (from compress.arch).
CONFIGS = {a.name: a.config_class for a in arch.TABLE if a.config_class}


def checkpoint(name: str, dtype: str = "float16") -> Path:
    """The cached random-weight folder for catalog model ``name``, built on first use."""
    from compress.planner.spec import load_model_spec

    spec = load_model_spec(name)
    if spec.architecture not in CONFIGS or spec.experts > 1:
        raise UnsupportedError(
            f"random weights are built for dense {', '.join(CONFIGS)} models; {spec.name} is {spec.architecture}"
            + (f" with {spec.experts} experts" if spec.experts > 1 else "")
        )
    out = cache_dir("random") / f"{spec.name}-{dtype}"
    if (out / "config.json").exists():
        return out
    from compress import dtypes
    from compress.memcheck import check_disk, check_memory

    # The weights in ``dtype``, plus the largest tensor's float32 draw (the embedding).
    weights_bytes = spec.params * dtypes.BYTES[dtype]
    check_memory(weights_bytes + spec.vocab * spec.hidden * 4, f"random weights of {spec.name} ({dtype})")
    check_disk(weights_bytes, out.parent, f"the random-weight checkpoint of {spec.name}")
    try:
        with atomic_dir(out) as tmp:
            _build(spec, tmp, dtype)
    except OSError:
        if not (out / "config.json").exists():  # another process built it first
            raise
    return out


def _config(spec: Any) -> Any:
    import transformers

    fields = dict(vocab_size=spec.vocab, hidden_size=spec.hidden, intermediate_size=spec.intermediate,
                  num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
                  head_dim=spec.head_dim, max_position_embeddings=spec.max_context,
                  tie_word_embeddings=spec.tied_embeddings, bos_token_id=256, eos_token_id=256)
    family = arch.by_name(spec.architecture)
    if family is not None and family.window_in_config:
        fields["sliding_window"] = spec.sliding_window
    return getattr(transformers, CONFIGS[spec.architecture])(**fields)


def _build(spec: Any, folder: Path, dtype: str) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from compress.dtypes import torch_dtype

    # Initialise on the meta device and fill in place: a 7B model's default
    # initialisers take minutes on a CPU, a normal fill takes seconds.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_config(spec), dtype=torch_dtype(dtype))
    model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives tied parameters separate storage
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("norm.weight"):
                tensor.fill_(1.0)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float32).mul_(0.02))
    model.eval().save_pretrained(folder)

    byte_vocab = {token: i for i, token in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    byte_vocab = {token: i for i, token in enumerate(sorted(byte_vocab))}
    byte_vocab["<|endoftext|>"] = 256
    bpe = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
