"""Compression algorithms as pure tensor functions: weights and calibration
statistics in, masks, pruned weights or scores out.

Nothing here loads a model, registers a hook or writes a file; the methods in
:mod:`compress.apply` do that plumbing and call these functions.

* :mod:`compress.algorithms.sparsity`: magnitude, Wanda and SparseGPT pruning, n:m masks.
* :mod:`compress.algorithms.importance`: layer importance (ShortGPT's Block Influence).
"""
