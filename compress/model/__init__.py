"""The model a plan is about, below every other layer: its spec (the architecture numbers that
decide memory and speed, :mod:`compress.model.spec`), its weight tensors as llama.cpp names
them (:mod:`compress.model.tensors`) and the catalog of known models
(:mod:`compress.model.catalog`). Methods and the planner both read these; reading a spec from
a file or the Hub is the planner's (:mod:`compress.planner.spec`).
"""
