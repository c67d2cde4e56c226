"""Structured layer dropping: remove the decoder layers that matter least and write
a physically smaller checkpoint.

Importance is ShortGPT's Block Influence (Men et al. 2024), measured on the
calibration windows with hooks on each decoder layer; the math lives in
:mod:`compress.algorithms.importance`. The checkpoint keeps the surviving layers
renumbered from 0 and its config's layer count updated, so any runtime loads it
as an ordinary, shallower model.

Reading the checkpoint's config and the held-out perplexity before and after
come from :mod:`compress.apply.evaluation`, as for pruning and distillation.
"""

from __future__ import annotations

from typing import Any

from compress import arch as arch_table
from compress.apply import Job
from compress.apply.evaluation import checkpoint_dtype, heldout_ids, perplexity
from compress.model.config import read_config
from compress.errors import UserInputError

#: Calibration windows per forward pass while measuring importance.
BATCH_WINDOWS = 8


def apply(job: Job) -> dict[str, Any]:
    from compress.loading import load_causal_lm, load_tokenizer

    n_drop = job.config["drop_layers"]
    folder = job.hf_dir()
    config = read_config(folder)
    arch = arch_table.lookup_config(config)
    n_layers = config[arch.layer_count_key]
    check_layer_count(n_drop, n_layers)
    tokenizer = load_tokenizer(folder)
    model = load_causal_lm(folder, dtype=checkpoint_dtype(config), device=job.device)

    dropped, scores = least_important_layers(model, arch, job.calibration_windows(tokenizer), n_drop, job)
    job.log(f"block influence per layer: {', '.join(f'{i}:{s:.4f}' for i, s in enumerate(scores))}")
    job.log(f"dropping layers {dropped} of {n_layers}")
    eval_ids = heldout_ids(tokenizer)
    ppl_before = perplexity(model, eval_ids, job.device)
    kept = [i for i in range(n_layers) if i not in dropped]
    arch_table.keep_layers(model, arch, kept)
    ppl_after = perplexity(model, eval_ids, job.device)
    job.log(f"perplexity on {len(eval_ids)} held-out tokens: {ppl_before:.2f} → {ppl_after:.2f}")

    model.save_pretrained(job.out_dir)
    tokenizer.save_pretrained(job.out_dir)
    return {
        "format": "hf", "runtime": "transformers",
        "importance_metric": "block_influence",
        "importance": [round(s, 6) for s in scores],
        "dropped_layers": dropped, "kept_layers": kept,
        "layers_before": n_layers, "layers_after": len(kept),
        "perplexity_before": round(ppl_before, 4), "perplexity_after": round(ppl_after, 4),
        "eval_tokens": len(eval_ids),
    }


def check_layer_count(n_drop: int, n_layers: int) -> None:
    """Refuse before any loading when the request would leave no layer."""
    if not 1 <= n_drop < n_layers:
        raise UserInputError(
            f"the model has {n_layers} decoder layers: can drop between 1 and {n_layers - 1}, got {n_drop}"
        )


def least_important_layers(model: Any, arch: arch_table.Layout, windows: list[list[int]], n_drop: int,
                           job: Job) -> tuple[list[int], list[float]]:
    """``(indices to drop, Block Influence of every layer)`` measured on ``windows``."""
    from compress.algorithms.importance import layers_to_drop

    scores = block_influences(model, arch, windows, job)
    return layers_to_drop(scores, n_drop), scores


def block_influences(model: Any, arch: arch_table.Layout, windows: list[list[int]], job: Job) -> list[float]:
    """Block Influence of each decoder layer, hooks capturing each layer's input and output."""
    import torch

    from compress.algorithms.importance import cosine_distance_sum

    layers = arch_table.decoder_layers(model, arch)
    sums = [0.0] * len(layers)
    counts = [0] * len(layers)
    entering: dict[int, Any] = {}

    def before(index: int) -> Any:
        def hook(_module: Any, args: tuple, kwargs: dict) -> None:
            entering[index] = args[0] if args else kwargs["hidden_states"]
        return hook

    def after(index: int) -> Any:
        def hook(_module: Any, _args: tuple, _kwargs: dict, output: Any) -> None:
            leaving = output[0] if isinstance(output, tuple) else output
            total, count = cosine_distance_sum(entering.pop(index), leaving)
            sums[index] += total
            counts[index] += count
        return hook

    handles = []
    for index, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(before(index), with_kwargs=True))
        handles.append(layer.register_forward_hook(after(index), with_kwargs=True))
    batches = [windows[i : i + BATCH_WINDOWS] for i in range(0, len(windows), BATCH_WINDOWS)]
    try:
        with torch.no_grad():
            for batch in job.track(batches, "measuring layer importance", total=len(batches)):
                model(torch.tensor(batch, device=job.device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return [s / c for s, c in zip(sums, counts)]
