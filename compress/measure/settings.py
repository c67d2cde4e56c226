"""What ``compress bench`` measures and how much: one frozen settings object.

Every size is a parameter so that tests run the whole sweep in seconds on a tiny model,
and every setting is written into the ``params`` of the records it decides.

Defaults are chosen for a real run on a CPU: llama-bench's standard tests are pp512 and
tg128 (llama.cpp ``tools/llama-bench/README.md``), but on a 2-core CPU a 512-token prompt
of a 135M model in fp32 takes about 5 s, and eager transformers decodes at tens of tokens
per second, so pp128 / tg32 with 3 repetitions keep a five-variant sweep within minutes
while staying far above timer resolution. ``for_device("cuda")`` returns llama-bench's
sizes. Perplexity scores 2,048 tokens in disjoint 512-token windows (4 windows, about
20 s a variant for the default model on an idle 2-core CPU).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from compress.errors import UserInputError


#: KV-cache types bench can run: the runtimes' defaults, and llama.cpp's quantized cache types
#: (``type_k``/``type_v``; the planner's --kv-dtype names them the same way).
KV_DTYPES = ("fp16", "fp32", "q8_0", "q4_0")

#: Test kinds: perplexity, TTFT, decode, batch throughput, and served load (vLLM or --endpoint):
#: ``serve`` is the closed-loop concurrency sweep, ``serve-rate`` the open-loop Poisson run.
TEST_KINDS = ("ppl", "pp", "tg", "batch", "serve", "serve-rate")
#: Which test kinds run when none are named: every offline test, and both served ones where a
#: server is measured (``--runtime vllm`` adds them; ``--endpoint`` runs only them).
OFFLINE_TESTS = ("ppl", "pp", "tg", "batch")
SERVED_TESTS = ("serve", "serve-rate")
#: The highest open-loop request rate a bench sends: a load generator of one thread a request
#: cannot keep a higher one, and infinity or NaN would make every arrival time the same or undefined.
MAX_RATE_PER_S = 10_000


@dataclass(frozen=True)
class BenchSettings:
    ppl_tokens: int = 2048  # tokens of the evaluation stream scored for perplexity
    ppl_context: int = 512  # window length
    ppl_stride: int = 512  # start of one window to the next (== context: disjoint windows)
    pp_tokens: int = 128  # prompt length of the TTFT test (pp<N>)
    tg_tokens: int = 32  # generated tokens of the decode test (tg<M>)
    tg_prompt_tokens: int = 1  # prompt before tg: llama-bench's tg starts from an almost empty cache
    batch_sizes: tuple[int, ...] = (4, 8)  # sequences decoded together in the batch<B> tests
    reps: int = 3  # timed repetitions
    warmup: int = 1  # untimed repetitions run first
    threads: int | None = None  # CPU threads; None: physical cores
    device: str = "auto"  # auto | cpu | cuda[:N]
    text: str | None = None  # evaluation text: None/'default', a file, 'wikitext-2'
    tests: tuple[str, ...] = OFFLINE_TESTS  # which test kinds run
    runtime: str | None = None  # None: each artifact's own runtime; "vllm": vLLM for every artifact it loads
    # Served tests: closed-loop concurrencies (``serve``), one open-loop Poisson rate (``serve-rate``),
    # requests per load run (prompts of pp_tokens, outputs of tg_tokens), and the SLO of goodput.
    serve_concurrency: tuple[int, ...] = (1, 2, 4, 8)
    serve_rate_per_s: float | None = 2.0
    serve_requests: int = 16
    slo_ttft_ms: float = 1000.0
    slo_itl_ms: float = 200.0
    ppl_convention: str = "compress"  # compress | llama.cpp (llama-perplexity's BOS, chunks and scored half)
    kld_top_k: int = 256  # baseline tokens kept per position for KL divergence; 0: no KLD records
    kv_dtype: str | None = None  # KV-cache element type (q8_0, q4_0 in llama.cpp); None: the runtime's default

    def __post_init__(self) -> None:
        for name in ("ppl_tokens", "ppl_context", "ppl_stride", "pp_tokens", "tg_tokens", "tg_prompt_tokens", "reps"):
            if getattr(self, name) < 1:
                raise UserInputError(f"bench setting {name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise UserInputError(f"bench setting warmup must be 0 or more, got {self.warmup}")
        if self.ppl_context < 2 or self.ppl_tokens < self.ppl_context:
            raise UserInputError(f"perplexity needs ppl_tokens >= ppl_context >= 2, got {self.ppl_tokens} and {self.ppl_context}")
        if not 1 <= self.ppl_stride <= self.ppl_context:
            raise UserInputError(f"ppl_stride must be between 1 and ppl_context ({self.ppl_context}), got {self.ppl_stride}")
        if any(b < 1 for b in self.batch_sizes):
            raise UserInputError(f"batch sizes must be positive, got {list(self.batch_sizes)}")
        if self.threads is not None and self.threads < 1:
            raise UserInputError(f"threads must be positive, got {self.threads}")
        if self.ppl_convention not in ("compress", "llama.cpp"):
            raise UserInputError(f"--ppl-convention must be 'compress' or 'llama.cpp', got {self.ppl_convention!r}")
        if self.ppl_convention == "llama.cpp" and (self.ppl_context < 4 or self.ppl_tokens < self.ppl_context):
            raise UserInputError(f"the llama.cpp convention needs ppl_tokens >= ppl_context >= 4, "
                                 f"got {self.ppl_tokens} and {self.ppl_context}")
        if self.kv_dtype is not None and self.kv_dtype not in KV_DTYPES:
            raise UserInputError(f"--kv-dtype must be one of {', '.join(KV_DTYPES)}, got {self.kv_dtype!r}")
        if self.kld_top_k < 0:
            raise UserInputError(f"kld_top_k must be 0 (no KLD) or more, got {self.kld_top_k}")
        unknown = set(self.tests) - set(TEST_KINDS)
        if unknown:
            raise UserInputError(f"unknown bench tests {sorted(unknown)}: expected some of {', '.join(TEST_KINDS)}")
        if any(c < 1 for c in self.serve_concurrency) or self.serve_requests < 1:
            raise UserInputError(f"served tests need positive concurrencies and request counts, got "
                                 f"{list(self.serve_concurrency)} and {self.serve_requests}")
        if self.serve_rate_per_s is not None and not (0 < self.serve_rate_per_s <= MAX_RATE_PER_S):
            raise UserInputError(f"--rate must be a number of requests a second above 0 and at most "
                                 f"{MAX_RATE_PER_S:,}, got {self.serve_rate_per_s}")
        if not (0 < self.slo_ttft_ms < math.inf and 0 < self.slo_itl_ms < math.inf):
            raise UserInputError(f"SLO limits must be positive, got ttft_ms={self.slo_ttft_ms}, itl_ms={self.slo_itl_ms}")

    @classmethod
    def for_device(cls, device: str, **overrides: Any) -> BenchSettings:
        """CPU defaults, or llama-bench's pp512/tg128 with 5 repetitions on a GPU."""
        base = cls(device=device)
        if device.startswith("cuda"):
            base = replace(base, pp_tokens=512, tg_tokens=128, reps=5, batch_sizes=(4, 16, 64),
                           serve_concurrency=(1, 2, 4, 8, 16), serve_requests=64, serve_rate_per_s=8.0)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch_sizes"] = list(self.batch_sizes)
        d["tests"] = list(self.tests)
        d["serve_concurrency"] = list(self.serve_concurrency)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("batch_sizes", "tests", "serve_concurrency"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def context_tokens(self) -> int:
        """The longest sequence any test evaluates: the runtime's context must hold it."""
        longest = max(self.ppl_context, self.pp_tokens, self.tg_prompt_tokens + self.tg_tokens)
        return longest + 8  # slack for runtimes that reserve a position or two


def plan_tests(settings: BenchSettings, threads: int) -> dict[str, dict[str, Any]]:
    """Test name → the settings that decide its result, in run order."""
    # A runtime chosen for every artifact (--runtime) decides every figure, so it is part of each
    # test's key; artifacts measured in their own runtime keep the keys they always had.
    chosen = {"runtime": settings.runtime} if settings.runtime else {}
    if settings.kv_dtype:  # likewise a KV-cache type asked for: the default keeps the keys records have
        chosen["kv_dtype"] = settings.kv_dtype
    common = {"threads": threads, "device_requested": settings.device, "reps": settings.reps,
              "warmup": settings.warmup, **chosen}
    plan: dict[str, dict[str, Any]] = {"size": {}}
    if "ppl" in settings.tests:
        plan["ppl"] = {"tokens": settings.ppl_tokens, "context": settings.ppl_context, "stride": settings.ppl_stride,
                       "text": settings.text or "default", "threads": threads,
                       "device_requested": settings.device, "kld_top_k": settings.kld_top_k, **chosen}
        if settings.ppl_convention != "compress":  # the default stays out, so earlier records keep their key
            plan["ppl"]["convention"] = settings.ppl_convention
    if "pp" in settings.tests:
        plan[f"pp{settings.pp_tokens}"] = {"prompt_tokens": settings.pp_tokens, **common}
    if "tg" in settings.tests:
        plan[f"tg{settings.tg_tokens}"] = {"tokens": settings.tg_tokens, "prompt_tokens": settings.tg_prompt_tokens,
                                           **common}
    if "batch" in settings.tests:
        for b in settings.batch_sizes:
            plan[f"batch{b}"] = {"batch": b, "tokens": settings.tg_tokens,
                                 "prompt_tokens": settings.tg_prompt_tokens, **common}
    load = {"prompt_tokens": settings.pp_tokens, "output_tokens": settings.tg_tokens,
            "requests": settings.serve_requests, "slo_ttft_ms": settings.slo_ttft_ms,
            "slo_itl_ms": settings.slo_itl_ms, "text": settings.text or "default", **common}
    if "serve" in settings.tests:
        for c in settings.serve_concurrency:
            plan[f"serve-c{c}"] = {"concurrency": c, **load}
    if "serve-rate" in settings.tests and settings.serve_rate_per_s is not None:
        plan[f"serve-rate{settings.serve_rate_per_s:g}"] = {"rate_per_s": settings.serve_rate_per_s, **load}
    keyed = {name: {**params, "settings_key": settings_key(name, params)} for name, params in plan.items()}
    # The peak covers loading and every other test, so it is redone when any of them changes.
    memory = {"tests": {t: p["settings_key"] for t, p in keyed.items() if t != "size"},
              "context": settings.context_tokens(), "device_requested": settings.device, "threads": threads}
    keyed["memory"] = {**memory, "settings_key": settings_key("memory", memory)}
    return keyed


def settings_key(test: str, params: dict[str, Any]) -> str:
    """A short hash of a test's deciding settings: equal keys mean a record can be reused on --resume."""
    return hashlib.sha256(json.dumps([test, params], sort_keys=True).encode()).hexdigest()[:12]
