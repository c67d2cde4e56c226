"""Weight sparsity as pure tensor functions: a weight and calibration statistics in,
a mask or pruned weight out. No hooks, no models, no files.

Conventions: ``weight`` is an ``nn.Linear`` weight of shape ``[out, in]``; a
*keep mask* is a bool tensor of the same shape, True where the weight survives.
Patterns are ``"unstructured"`` (a fraction of all weights) or ``"n:m"`` (at most
``n`` non-zeros in every ``m`` consecutive inputs of a row; ``2:4`` is what
NVIDIA Ampere and later sparse tensor cores execute).

Methods:

* magnitude: keep the largest ``|W|`` over the whole matrix.
* Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"):
  score ``|W_ij| · ||X_j||₂`` and compare within each output row, no weight update.
* SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be
  Accurately Pruned in One-Shot"): choose the mask blockwise by the OBS saliency
  ``w² / [H⁻¹]²_jj`` and update the remaining weights of the row to compensate,
  with ``H = XᵀX`` from calibration inputs.
"""

from __future__ import annotations

from typing import Any

from compress.errors import UserInputError

PATTERNS = ("unstructured", "2:4")


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """``"unstructured"`` → None; ``"n:m"`` → ``(n, m)`` with 0 < n < m."""
    if pattern == "unstructured":
        return None
    try:
        n, m = (int(part) for part in pattern.split(":"))
    except ValueError:
        raise UserInputError(f"sparsity pattern must be 'unstructured' or 'n:m' such as '2:4', got {pattern!r}") from None
    if not 0 < n < m:
        raise UserInputError(f"an n:m pattern needs 0 < n < m, got {pattern!r}")
    return n, m


def check_sparsity(sparsity: float) -> float:
    """Refuse a fraction outside the open interval (0, 1): 0 prunes nothing, 1 everything."""
    if not isinstance(sparsity, (int, float)) or not 0 < sparsity < 1:
        raise UserInputError(f"sparsity is the fraction of weights set to zero, strictly between 0 and 1, got {sparsity!r}")
    return float(sparsity)


def _keep_largest(scores: Any, n_pruned: int) -> Any:
    """Keep mask of a 1-D or row-wise 2-D score tensor that drops exactly ``n_pruned`` lowest per row.

    Uses indices rather than a threshold so that ties never change the count.
    """
    import torch

    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_pruned > 0:
        lowest = torch.topk(scores, n_pruned, dim=-1, largest=False, sorted=False).indices
        keep.scatter_(-1, lowest, False)
    return keep


def nm_mask(scores: Any, n: int = 2, m: int = 4) -> Any:
    """Keep mask with the ``n`` highest scores of every ``m`` consecutive inputs of each row."""
    rows, cols = scores.shape
    if cols % m:
        raise UserInputError(f"an {n}:{m} pattern needs the input width to be a multiple of {m}, got {cols}")
    groups = scores.reshape(rows, cols // m, m)
    return _keep_largest(groups, m - n).reshape(rows, cols)


def unstructured_mask(scores: Any, sparsity: float, per_row: bool = False) -> Any:
    """Keep mask dropping the lowest ``sparsity`` fraction of ``scores``.

    Over the whole matrix, exactly ``floor(numel · sparsity)`` entries go; per
    row, ``floor(in · sparsity)`` of each row.
    """
    check_sparsity(sparsity)
    if per_row:
        return _keep_largest(scores, int(scores.shape[1] * sparsity))
    return unstructured_mask_count(scores, int(scores.numel() * sparsity))


def unstructured_mask_count(scores: Any, n_pruned: int) -> Any:
    """Keep mask dropping exactly the ``n_pruned`` lowest entries of a matrix."""
    return _keep_largest(scores.reshape(-1), n_pruned).reshape(scores.shape)


def magnitude_mask(weight: Any, sparsity: float = 0.5, pattern: str = "unstructured") -> Any:
    """Keep mask of the largest ``|W|``: the layer-wise magnitude baseline (Han et al. 2015)."""
    scores = weight.detach().abs().float()
    nm = parse_pattern(pattern)
    return nm_mask(scores, *nm) if nm else unstructured_mask(scores, sparsity)


def input_sq_norms(inputs: Any) -> Any:
    """``Σ_t x_tj²`` per input feature ``j`` of a batch of linear inputs ``[..., in]``.

    Sums add across batches; Wanda needs the root of the total.
    """
    x = inputs.detach().reshape(-1, inputs.shape[-1]).float()
    return (x * x).sum(dim=0)


def wanda_scores(weight: Any, input_sq_norm: Any) -> Any:
    """Wanda's score ``|W_ij| · ||X_j||₂`` (Sun et al. 2023, eq. 1), with ``input_sq_norm = ||X_j||₂²``."""
    return weight.detach().abs().float() * input_sq_norm.float().sqrt().reshape(1, -1)


def wanda_mask(weight: Any, input_sq_norm: Any, sparsity: float = 0.5, pattern: str = "unstructured") -> Any:
    """Wanda's keep mask: scores compared within each output row (Sun et al. 2023, §3, "per output")."""
    scores = wanda_scores(weight, input_sq_norm)
    nm = parse_pattern(pattern)
    return nm_mask(scores, *nm) if nm else unstructured_mask(scores, sparsity, per_row=True)


def hessian(inputs: Any) -> Any:
    """``XᵀX`` of a batch of linear inputs ``[..., in]``, in float32; sums add across batches.

    SparseGPT's layer-wise objective ``||WX − ŴX||²`` has Hessian ``2XXᵀ``; the
    constant factor cancels in every quantity the solver uses.
    """
    x = inputs.detach().reshape(-1, inputs.shape[-1]).float()
    return x.T @ x


def sparsegpt(weight: Any, hessian_sum: Any, sparsity: float = 0.5, pattern: str = "unstructured",
              block_size: int = 128, damp: float = 0.01) -> Any:
    """Prune ``weight`` with SparseGPT and return the pruned, compensated weight (same dtype).

    Frantar & Alistarh 2023, Algorithm 1: columns are processed left to right in
    blocks of ``block_size``. At the start of each block the mask is chosen from
    the saliency ``w² / [H⁻¹]²_jj`` (the OBS error of removing one weight); then
    each column's removed weights are zeroed and the error they leave, divided by
    ``[H⁻¹]_jj``, is spread over the not-yet-processed columns through the row of
    the upper Cholesky factor of ``H⁻¹`` — the same sequential update GPTQ uses.

    ``damp`` adds that fraction of the mean diagonal to ``H`` so the inverse exists
    when inputs are few or collinear; inputs that are always zero are pruned
    first and their columns excluded. Unstructured sparsity is exact overall:
    each block removes its share of ``floor(numel · sparsity)``.
    """
    import torch

    nm = parse_pattern(pattern)
    if nm is None:
        check_sparsity(sparsity)
    elif block_size % nm[1]:
        raise UserInputError(f"block size {block_size} must be a multiple of m={nm[1]} for an n:m pattern")
    rows, cols = weight.shape
    if nm and cols % nm[1]:
        raise UserInputError(f"an {nm[0]}:{nm[1]} pattern needs the input width to be a multiple of {nm[1]}, got {cols}")
    w = weight.detach().clone().float()
    h = hessian_sum.detach().clone().float().to(w.device)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(cols, device=w.device)
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)

    total_pruned = int(rows * cols * sparsity)
    for start in range(0, cols, block_size):
        end = min(start + block_size, cols)
        w_block = w[:, start:end].clone()
        h_inv_block = h_inv[start:end, start:end]
        h_inv_diag = torch.diag(h_inv_block).reshape(1, -1)
        if nm is None:
            # This block's share of the exact total, so the rounding never accumulates.
            share = total_pruned * end // cols - total_pruned * start // cols
            keep = unstructured_mask_count(w_block**2 / h_inv_diag**2, share)
        else:
            keep = torch.ones_like(w_block, dtype=torch.bool)
        errors = torch.zeros_like(w_block)
        for j in range(end - start):
            if nm is not None and j % nm[1] == 0:
                # n:m groups are chosen when their first column is reached, from the
                # weights as updated so far (Frantar & Alistarh 2023, §3.3).
                group = slice(j, j + nm[1])
                keep[:, group] = nm_mask(w_block[:, group] ** 2 / h_inv_diag[:, group] ** 2, *nm)
            column = w_block[:, j]
            pruned = torch.where(keep[:, j], column, torch.zeros_like(column))
            error = (column - pruned) / h_inv_block[j, j]
            w_block[:, j:] -= error.unsqueeze(1) @ h_inv_block[j, j:].unsqueeze(0)
            w_block[:, j] = pruned
            errors[:, j] = error
        w[:, start:end] = w_block
        w[:, end:] -= errors @ h_inv[start:end, end:]
    return w.to(weight.dtype)


def reconstruction_error(weight: Any, pruned: Any, inputs: Any) -> float:
    """``||XWᵀ − XŴᵀ||²_F``: the layer-wise loss every method here tries to keep small."""
    x = inputs.reshape(-1, inputs.shape[-1]).float()
    diff = x @ (weight.float() - pruned.float()).T
    return float((diff * diff).sum())


def sparsity_of(tensor: Any) -> float:
    """Fraction of exact zeros."""
    return float((tensor == 0).sum()) / tensor.numel()
