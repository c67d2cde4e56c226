"""Baseline: the model unchanged but for its dtype, saved as a Hugging Face checkpoint."""

from __future__ import annotations

from typing import Any

from compress.apply import Job
from compress.loading import load_causal_lm, load_tokenizer


def apply(job: Job) -> dict[str, Any]:
    folder = job.hf_dir()
    model = load_causal_lm(folder, dtype=job.config["dtype"], device="cpu")
    model.save_pretrained(job.out_dir)
    load_tokenizer(folder).save_pretrained(job.out_dir)
    return {"format": "hf", "runtime": "transformers", "dtype": job.config["dtype"]}
