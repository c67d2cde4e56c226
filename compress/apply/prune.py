"""Weight pruning: magnitude, Wanda or SparseGPT, unstructured or 2:4, written as a
normal Hugging Face checkpoint.

Activation-aware methods see each decoder layer's real inputs. As in the Wanda
and SparseGPT papers, layers are pruned in order and layer ``i`` is calibrated on
the outputs of the already-pruned layers ``< i``, so later layers adapt to the
error of earlier ones. Calibration inputs are captured once at the entrance of
layer 0 (a hook that stops the forward pass) and then pushed through one layer at
a time, which keeps one layer's activations in memory, not the whole model's.

The pruned weights are stored dense, with zeros: the checkpoint is as large as
its input and runs no faster unless a runtime with sparse kernels loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compress import arch as arch_table
from compress.apply import Job
from compress.apply.evaluation import checkpoint_dtype, heldout_ids, perplexity
from compress.model.config import read_config
from compress.errors import UserInputError
from compress.methods.prune import ALGORITHMS as PRUNE_METHODS

#: Calibration windows per forward pass of one layer.
BATCH_WINDOWS = 8
#: What each activation-aware method accumulates over a linear's inputs (a function
#: of :mod:`compress.algorithms.sparsity`; its values add across batches).
STATISTICS = {"wanda": "input_sq_norms", "sparsegpt": "hessian"}
DENSE_STORAGE_NOTE = (
    "weights are stored dense with zeros: the checkpoint is as large as the input and no faster "
    "unless the runtime has sparse kernels (2:4 on NVIDIA Ampere or later)"
)


def apply(job: Job) -> dict[str, Any]:
    from compress.algorithms import sparsity as sp
    from compress.loading import load_causal_lm, load_tokenizer

    algorithm = job.config.get("algorithm", "wanda")
    pattern = job.config.get("pattern", "unstructured")
    sparsity = sp.check_sparsity(job.config.get("sparsity", 0.5))
    if algorithm not in PRUNE_METHODS:
        raise UserInputError(f"pruning algorithm must be one of {', '.join(PRUNE_METHODS)}, got {algorithm!r}")
    if pattern not in sp.PATTERNS:
        raise UserInputError(f"sparsity pattern must be one of {', '.join(sp.PATTERNS)}, got {pattern!r}")
    if pattern == "2:4" and sparsity != 0.5:
        raise UserInputError(f"the 2:4 pattern fixes sparsity at 0.5, got --sparsity {sparsity}: drop --sparsity or use {algorithm}-{sparsity * 100:g}")

    folder = job.hf_dir()
    config = read_config(folder)
    arch = arch_table.lookup_config(config)
    tokenizer = load_tokenizer(folder)
    model = load_causal_lm(folder, dtype=checkpoint_dtype(config), device=job.device)
    eval_ids = heldout_ids(tokenizer)
    ppl_before = perplexity(model, eval_ids, job.device)

    layers = arch_table.decoder_layers(model, arch)
    rule = _pruning_rule(algorithm, sparsity, pattern)
    if algorithm == "magnitude":
        for layer in job.track(layers, "magnitude: pruning layers", total=len(layers)):
            for linear in arch_table.layer_linears(layer, arch).values():
                linear.weight.data = rule(linear.weight.data, None)
    else:
        statistic = getattr(sp, STATISTICS[algorithm])
        prune_sequentially(model, layers, arch, job.calibration_windows(tokenizer), statistic, rule, job)

    ppl_after = perplexity(model, eval_ids, job.device)
    linears = [linear for layer in layers for linear in arch_table.layer_linears(layer, arch).values()]
    pruned_params = sum(linear.weight.numel() for linear in linears)
    zeros = sum(int((linear.weight == 0).sum()) for linear in linears)
    job.log(f"{zeros / pruned_params:.2%} of {pruned_params:,} weights in {len(linears)} linears are zero; "
            f"perplexity on {len(eval_ids)} held-out tokens: {ppl_before:.2f} → {ppl_after:.2f}")
    all_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(job.out_dir)
    tokenizer.save_pretrained(job.out_dir)
    return {
        "format": "hf", "runtime": "transformers",
        "algorithm": algorithm, "pattern": pattern, "sparsity_target": sparsity,
        # Over the pruned linears; embeddings, norms and the LM head are left dense.
        "sparsity_measured": round(zeros / pruned_params, 6),
        "sparsity_of_all_weights": round(zeros / all_params, 6),
        "pruned_linears": list(arch.linears),
        "min_linear_sparsity": round(min(sp.sparsity_of(linear.weight) for linear in linears), 6),
        "perplexity_before": round(ppl_before, 4), "perplexity_after": round(ppl_after, 4),
        "eval_tokens": len(eval_ids),
        "storage": DENSE_STORAGE_NOTE,
    }


def _pruning_rule(algorithm: str, sparsity: float, pattern: str) -> Callable[[Any, Any], Any]:
    """``(weight, statistic) → pruned weight`` for one algorithm, wrapping the pure functions."""
    from compress.algorithms import sparsity as sp

    if algorithm == "magnitude":
        return lambda weight, _stat: weight * sp.magnitude_mask(weight, sparsity, pattern)
    if algorithm == "wanda":
        return lambda weight, stat: weight * sp.wanda_mask(weight, stat, sparsity, pattern)
    return lambda weight, stat: sp.sparsegpt(weight, stat, sparsity, pattern)


class _Captured(Exception):
    """Raised by the capture hook to stop the forward pass at layer 0."""


def first_layer_inputs(model: Any, layers: Any, windows: list[list[int]], device: str) -> list[tuple[Any, dict]]:
    """``[(hidden states, layer kwargs)]`` entering layer 0, one pair per batch of windows.

    The kwargs (rotary embeddings, causal mask, positions) are what the model's
    own forward hands each layer, so replaying them reproduces the model exactly.
    """
    import torch

    captured: list[tuple[Any, dict]] = []

    def grab(_module: Any, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append((hidden.detach(), kwargs))
        raise _Captured

    handle = layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            for start in range(0, len(windows), BATCH_WINDOWS):
                try:
                    model(torch.tensor(windows[start : start + BATCH_WINDOWS], device=device), use_cache=False)
                except _Captured:
                    pass
    finally:
        handle.remove()
    return captured


def prune_sequentially(model: Any, layers: Any, arch: arch_table.Layout, windows: list[list[int]],
                       statistic: Callable[[Any], Any], rule: Callable[[Any, Any], Any], job: Job) -> None:
    """Prune ``layers`` in order, each calibrated on the outputs of the pruned layers before it.

    ``statistic`` maps a batch of a linear's inputs to a summable tensor;
    ``rule`` maps ``(weight, summed statistic)`` to the pruned weight.
    """
    import torch

    batches = first_layer_inputs(model, layers, windows, job.device)
    for index, layer in job.track(enumerate(layers), "pruning layers", total=len(layers)):
        linears = arch_table.layer_linears(layer, arch)
        stats: dict[str, Any] = {}

        def accumulate(path: str) -> Callable[..., None]:
            def hook(_module: Any, args: tuple, _output: Any) -> None:
                value = statistic(args[0])
                stats[path] = value if path not in stats else stats[path] + value
            return hook

        handles = [linear.register_forward_hook(accumulate(path)) for path, linear in linears.items()]
        try:
            with torch.no_grad():
                for hidden, kwargs in batches:
                    layer(hidden, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        for path, linear in linears.items():
            linear.weight.data = rule(linear.weight.data, stats[path])
        if index + 1 < len(layers):
            with torch.no_grad():
                batches = [(_hidden(layer(hidden, **kwargs)), kwargs) for hidden, kwargs in batches]


def _hidden(output: Any) -> Any:
    """A decoder layer returns its hidden states alone or first in a tuple, by transformers version."""
    return output[0] if isinstance(output, tuple) else output
