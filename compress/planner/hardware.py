"""GPU and host profiles: what the planner knows about the machine it plans for.

GPU facts come from ``profiles/gpus/*.toml`` and from the user's own folder
(``$COMPRESS_USER_GPUS``, else ``~/.config/compress/gpus``; a user file of the same name
overrides the catalog's); a device can also be one TOML file (``--gpu path/to/device.toml``)
or described on the command line (:func:`custom_gpu`). Which kernel needs which compute
capability, or which ROCm/Metal architecture, comes from ``profiles/kernels.toml``. The host ("cpu") profile is built from /proc/cpuinfo,
/proc/meminfo and ``os.cpu_count()``, with bandwidth and FLOPs from ``probe.json`` in the
compress cache when ``compress probe`` has measured them, else from the documented defaults in
``profiles/host.toml``. ``auto`` asks NVML for the GPU and falls back to the host.
"""

from __future__ import annotations

import math

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from compress.planner import profiles
from compress.registry import suggest

GIB = 2**30
BACKENDS = ("cuda", "rocm", "metal", "cpu")
#: Compute capability assumed for a device described only by memory and bandwidth.
CUSTOM_DEFAULT_CC = "8.0"


@dataclass(frozen=True)
class GpuProfile:
    """One accelerator (or the host CPU, ``kind == "cpu"``) as the planner sees it."""

    name: str
    display_name: str
    kind: str = "gpu"  # "gpu" | "cpu"
    compute_capability: str | None = None
    memory_gib: float = 0.0
    usable_memory_gib: float = 0.0
    memory_bandwidth_gbs: float = 0.0
    tflops: dict[str, float] = field(default_factory=dict)
    architecture: str = ""
    aliases: tuple[str, ...] = ()
    interconnect_gbs: float = 0.0
    tdp_w: float | None = None
    cores: int | None = None
    source: str = ""
    notes: tuple[str, ...] = ()
    backend: str = "cuda"  # cuda | rocm | metal | cpu: which kernels.toml key decides support
    arch_id: str | None = None  # ROCm gfx target or Apple GPU family, matched by kernels.toml

    def __post_init__(self) -> None:
        if self.kind not in ("gpu", "cpu"):
            raise ValueError(f"GpuProfile.kind must be 'gpu' or 'cpu', got {self.kind!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"profile {self.name!r}: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.usable_memory_gib <= 0 or self.memory_bandwidth_gbs <= 0:
            raise ValueError(f"profile {self.name!r} needs positive memory and bandwidth")

    @property
    def cc(self) -> float | None:
        """Compute capability as a number (8.6), None for the CPU."""
        return float(self.compute_capability) if self.compute_capability else None

    def peak_tflops(self, dtype: str) -> float:
        """Dense peak for ``dtype``; bf16 falls back to fp16 and fp16 to fp32 where absent."""
        for key in {"bf16": ("bf16", "fp16", "fp32"), "fp16": ("fp16", "fp32")}.get(dtype, (dtype, "fp32")):
            if key in self.tflops:
                return self.tflops[key]
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuProfile:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["aliases"] = tuple(known.get("aliases", ()))
        known["notes"] = tuple(known.get("notes", ()))
        known["tflops"] = {k: float(v) for k, v in known.get("tflops", {}).items()}
        return cls(**known)


def user_gpus_dir() -> Path:
    """The user's own GPU profiles: ``$COMPRESS_USER_GPUS``, else ``$XDG_CONFIG_HOME`` or
    ``~/.config``, then ``compress/gpus``."""
    env = os.environ.get("COMPRESS_USER_GPUS")
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "compress" / "gpus"


def _profile_from_data(data: dict[str, Any], where: Path) -> GpuProfile:
    """A GPU profile from a TOML table, or one clear line saying what is missing."""
    missing = [k for k in ("name", "memory_gib", "memory_bandwidth_gbs") if k not in data]
    if missing:
        raise UserInputError(f"GPU profile {where} lacks {', '.join(missing)}: expected at least name, memory_gib, "
                             "memory_bandwidth_gbs (and usable_memory_gib, tflops); see profiles/gpus/*.toml")
    data = {"display_name": data["name"], "usable_memory_gib": data["memory_gib"], **data, "kind": "gpu"}
    for key in ("name", "display_name"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise UserInputError(f"GPU profile {where}: {key} must be text, got {_shown(data[key])}")
    for key in DEVICE_MAXIMA:
        if key in data and key != "tflops":
            _bounded(data[key], key, where)
    tflops = data.get("tflops", {})
    if not isinstance(tflops, dict):
        raise UserInputError(f"GPU profile {where}: tflops must be a table of dense TFLOPS by type, e.g. "
                             f"tflops = {{ fp16 = 989, bf16 = 989 }}, got {_shown(tflops)}")
    for dtype, value in tflops.items():
        _bounded(value, f"tflops.{dtype}", where, maximum=DEVICE_MAXIMA["tflops"])
    try:
        return GpuProfile.from_dict(data)
    except (TypeError, ValueError) as err:
        raise UserInputError(f"GPU profile {where} is not valid: {err}") from None


def _gpu_table() -> dict[str, GpuProfile]:
    table: dict[str, GpuProfile] = {}
    for path, data in profiles.load_folder("gpus"):
        profile = _profile_from_data(data, path)
        table[profile.name] = profile
    user = user_gpus_dir()
    if user.is_dir():
        for path in sorted(user.glob("*.toml")):
            profile = _profile_from_data(profiles.read_file(path), path)
            table[profile.name] = replace(profile, notes=(*profile.notes, f"user profile {path}"))
    return table


def gpu_names() -> list[str]:
    return sorted(_gpu_table())


def list_gpus() -> list[GpuProfile]:
    """Every GPU profile in the catalog, smallest memory first."""
    return sorted(_gpu_table().values(), key=lambda g: (g.usable_memory_gib, g.memory_bandwidth_gbs))


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-").removeprefix("nvidia-")


def load_gpu(name: str) -> GpuProfile:
    """A GPU profile by name or alias, or a ``.toml`` file; ``cpu``/``host`` = this machine;
    ``auto`` = NVML detect. The user's folder (:func:`user_gpus_dir`) comes before the catalog."""
    if name.strip().lower().endswith(".toml"):
        path = Path(name.strip()).expanduser()
        if not path.is_file():
            raise UserInputError(f"no GPU profile file {path}: expected a TOML file like profiles/gpus/h100-sxm.toml")
        return _profile_from_data(profiles.read_file(path), path)
    key = _normal(name)
    if key in ("cpu", "host"):
        return host_profile()
    if key == "auto":
        return detect_gpu()
    user = user_gpus_dir() / f"{key}.toml"
    direct = profiles.profiles_dir() / "gpus" / f"{key}.toml"
    if not user.is_file() and direct.is_file():  # the common case: reading one file beats parsing the catalog
        return _profile_from_data(profiles.load(f"gpus/{key}.toml"), direct)
    table = _gpu_table()
    if key in table:
        return table[key]
    _refuse_ambiguous(name, key, table)
    for profile in table.values():
        if key in (_normal(a) for a in profile.aliases):
            return profile
    raise suggest(name, [*table, "cpu", "auto"], "GPU")


def _refuse_ambiguous(name: str, key: str, table: dict[str, GpuProfile]) -> None:
    """A name that begins the names of several profiles (``a100``: four cards of 40 and 80 GB,
    SXM and PCIe) is refused with the choices, never taken to mean one of them."""
    starting = sorted(p.name for p in table.values()
                      if key and any(n.startswith(key) for n in (p.name, *map(_normal, p.aliases))))
    if len(starting) > 1:
        raise UserInputError(f"GPU {name.strip()!r} could be {len(starting)} profiles: expected one of "
                             f"{', '.join(starting)} (`compress gpus` shows their memory)")


# --- kernels ---------------------------------------------------------------------------------

#: The largest value a device description may give, whether in a TOML profile or on the command
#: line: far above any device today (a GB300 NVL72 rack has 21 TiB of HBM and 576 TB/s; an
#: 8-socket host 32 TiB of RAM), low enough that a slip of the exponent is caught.
DEVICE_MAXIMA = {"memory_gib": 1_048_576.0, "usable_memory_gib": 1_048_576.0, "memory_bandwidth_gbs": 10_000_000.0,
                 "tflops": 1_000_000.0}


def _shown(value: Any) -> str:
    return repr(value)[:40]


def _bounded(value: Any, key: str, where: Any, maximum: float | None = None) -> float:
    """``value`` as a finite number above zero and at most the key's maximum, or one line naming the file and key."""
    maximum = maximum or DEVICE_MAXIMA[key]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not _positive(float(value)) or value > maximum:
        raise UserInputError(f"GPU profile {where}: {key} must be a number above 0 and at most {maximum:,.0f}, "
                             f"got {_shown(value)}")
    return float(value)


def kernel_rules() -> dict[str, dict[str, Any]]:
    return profiles.load("kernels.toml")


def _positive(value: float) -> bool:
    """A finite number above zero (NaN and infinity compare in ways that slip through ``<= 0``)."""
    return math.isfinite(value) and value > 0


def custom_gpu(memory_gib: float, bandwidth_gbs: float, tflops: float | None = None, *,
               compute_capability: str | None = None, name: str = "custom") -> GpuProfile:
    """A device described on the command line: memory, bandwidth and optionally the dense
    fp16/bf16 TFLOPS. Without a compute capability it is taken as sm80 (Ampere-class kernels)."""
    if not (_positive(memory_gib) and _positive(bandwidth_gbs)):
        raise UserInputError(f"a custom device needs positive --gpu-memory and --bandwidth, got {memory_gib:g} GiB "
                             f"and {bandwidth_gbs:g} GB/s")
    if tflops is not None and not _positive(tflops):
        raise UserInputError(f"--tflops must be a positive number, got {tflops:g}")
    for option, value, key in (("--gpu-memory", memory_gib, "memory_gib"), ("--bandwidth", bandwidth_gbs,
                                                                           "memory_bandwidth_gbs"),
                               ("--tflops", tflops, "tflops")):
        if value is not None and value > DEVICE_MAXIMA[key]:
            raise UserInputError(f"{option} must be at most {DEVICE_MAXIMA[key]:,.0f}, got {value:g}")
    cc = compute_capability or CUSTOM_DEFAULT_CC
    try:
        float(cc)
    except ValueError:
        raise UserInputError(f"--compute-capability takes a number like 8.9, got {cc!r}") from None
    notes = [f"custom device: {memory_gib:g} GiB, {bandwidth_gbs:g} GB/s"
             + (f", {tflops:g} dense fp16 TFLOPS" if tflops else ", no TFLOPS given: prefill and TTFT are not predicted")]
    if compute_capability is None:
        notes.append(f"custom device taken as sm{cc.replace('.', '')} for kernel choice; pass --compute-capability")
    peak = {"fp16": float(tflops), "bf16": float(tflops), "fp32": float(tflops) / 2} if tflops else {}
    memory_gib = round(memory_gib, 2)
    return GpuProfile(name=name, display_name=f"custom ({memory_gib:g} GiB, {bandwidth_gbs:g} GB/s)",
                      compute_capability=cc, memory_gib=memory_gib, usable_memory_gib=memory_gib,
                      memory_bandwidth_gbs=bandwidth_gbs, tflops=peak, architecture="custom",
                      source="command line", notes=tuple(notes))


def kernel_support(gpu: GpuProfile, kernel: str) -> tuple[bool, str]:
    """Whether ``gpu`` runs ``kernel`` natively, and a sentence saying why (from kernels.toml)."""
    rules = kernel_rules()
    if kernel not in rules:
        raise KeyError(f"no rule for kernel {kernel!r} in kernels.toml; known: {', '.join(sorted(rules))}")
    rule = rules[kernel]
    if gpu.kind == "cpu":
        return False, f"{rule['what']} is a CUDA feature; not on the CPU"
    if gpu.backend not in ("cuda", "cpu"):
        allowed = rule.get(gpu.backend)
        where = f"{gpu.display_name} ({gpu.backend.upper() if gpu.backend == 'rocm' else gpu.backend.title()}"
        where += f", {gpu.arch_id})" if gpu.arch_id else ")"
        if allowed == "all" or (isinstance(allowed, list) and gpu.arch_id in allowed):
            return True, f"{rule['what']}: runs on {where}"
        fallback = f"; falls back to {rule['fallback']}" if rule.get("fallback") else ""
        return False, f"{rule['what']} does not run on {where}{fallback}"
    need = float(rule["min_cc"])
    if gpu.cc is not None and gpu.cc >= need:
        return True, f"{rule['what']}: sm{gpu.compute_capability.replace('.', '')} >= sm{rule['min_cc'].replace('.', '')}"
    fallback = f"; falls back to {rule['fallback']}" if rule.get("fallback") else ""
    return False, (f"{rule['what']} needs sm{rule['min_cc'].replace('.', '')}+, "
                   f"{gpu.display_name} is sm{(gpu.compute_capability or '?').replace('.', '')}{fallback}")


# --- the host --------------------------------------------------------------------------------

def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in path.read_text().splitlines():
            if not line.strip():
                if fields:
                    break
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _meminfo_gib(path: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GIB
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_probe() -> dict[str, Any] | None:
    """``probe.json`` as ``compress probe`` writes it (:func:`profiles.probe_path`), or None
    when absent/unreadable."""
    path = profiles.probe_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def probe_of_this_machine(probe: dict[str, Any] | None) -> bool:
    """Whether a probe was measured on this CPU model with this many cores: a cache folder can
    outlive the machine (a home folder carried to a new VM of another CPU kind)."""
    from compress.provenance import cpu_name

    return bool(probe) and probe.get("cpu") == cpu_name() and probe.get("cores") == (os.cpu_count() or 1)


def host_profile() -> GpuProfile:
    """This machine's CPU and RAM as a plannable device."""
    defaults = profiles.load("host.toml")
    info = _cpuinfo()
    cores = os.cpu_count() or 1
    model = info.get("model name") or info.get("Hardware") or "unknown CPU"
    total_gib = _meminfo_gib() or 8.0
    usable_gib = max(total_gib - defaults["reserved_gib"], 0.5)
    flags = set(info.get("flags", "").split())
    per_cycle = defaults["fp32_flops_per_cycle_avx512" if "avx512f" in flags else "fp32_flops_per_cycle_avx2"]
    try:
        clock_ghz = float(info["cpu MHz"]) / 1000
    except (KeyError, ValueError):
        clock_ghz = defaults["default_clock_ghz"]
    notes: list[str] = []
    bandwidth_gbs = min(cores * defaults["bandwidth_gbs_per_core"], defaults["bandwidth_gbs_max"])
    fp32_tflops = cores * per_cycle * clock_ghz / 1000
    bw_note = (f"host bandwidth {bandwidth_gbs:.0f} GB/s is the documented default "
               f"({defaults['bandwidth_gbs_per_core']:g} GB/s per core x {cores} cores, profiles/host.toml); "
               "run `compress probe` to measure it")
    probe = read_probe()
    if probe and not probe_of_this_machine(probe):
        bw_note += (f" (the cached probe was measured on {probe.get('cpu')} with {probe.get('cores')} cores, "
                    "not this machine)")
        probe = None
    if probe and probe.get("copy_bandwidth_gbs"):
        bandwidth_gbs = float(probe["copy_bandwidth_gbs"])
        bw_note = f"host bandwidth {bandwidth_gbs:.1f} GB/s measured by `compress probe` ({profiles.probe_path()})"
        if probe.get("busy"):
            bw_note += "; measured while the machine was busy: " + "; ".join(probe.get("warnings", []))
        if probe.get("matmul_tflops_fp32"):
            fp32_tflops = float(probe["matmul_tflops_fp32"])
    notes.append(bw_note)
    notes.append(f"host memory: {total_gib:.1f} GiB total, {defaults['reserved_gib']:g} GiB kept for the OS")
    return GpuProfile(
        name="cpu", display_name=f"{model} ({cores} cores)", kind="cpu", backend="cpu",
        memory_gib=round(total_gib, 2), usable_memory_gib=round(usable_gib, 2),
        memory_bandwidth_gbs=bandwidth_gbs, tflops={"fp32": round(fp32_tflops, 4)},
        architecture=info.get("vendor_id", ""), cores=cores,
        source="/proc/cpuinfo, /proc/meminfo, os.cpu_count(); profiles/host.toml or compress probe's probe.json",
        notes=tuple(notes),
    )


def detect_gpu() -> GpuProfile:
    """The first NVIDIA GPU via NVML, matched to a catalog profile; the host if there is none."""
    try:
        import pynvml  # from nvidia-ml-py; imported here so planning never needs it
    except ImportError:
        return _with_note(host_profile(), "--gpu auto: nvidia-ml-py is not installed; planning for the host CPU")
    try:
        pynvml.nvmlInit()
    except Exception as err:  # NVMLError_LibraryNotFound / DriverNotLoaded on machines without a GPU
        return _with_note(host_profile(), f"--gpu auto: no NVIDIA GPU found ({type(err).__name__}); planning for the host CPU")
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        raw = pynvml.nvmlDeviceGetName(handle)
        gpu_name = raw.decode() if isinstance(raw, bytes) else raw
        total_gib = pynvml.nvmlDeviceGetMemoryInfo(handle).total / GIB
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    profile = match_gpu_name(gpu_name, total_gib)
    note = f"--gpu auto: detected {gpu_name} ({total_gib:.1f} GiB, sm{major}{minor}, {count} GPU(s))"
    if profile is None:
        raise UserInputError(f"{note}, which has no profile in profiles/gpus; pass --gpu with the closest of: {', '.join(gpu_names())}")
    from dataclasses import replace

    return replace(profile, usable_memory_gib=round(total_gib, 2), notes=(*profile.notes, f"{note} -> profile {profile.name}"))


def match_gpu_name(device_name: str, total_gib: float | None = None) -> GpuProfile | None:
    """The catalog profile for an NVML device name such as 'NVIDIA A100-SXM4-80GB'."""
    text = _normal(device_name).replace("tesla-", "").replace("geforce-", "")
    best: tuple[int, GpuProfile] | None = None
    for profile in _gpu_table().values():
        for key in (profile.name, *(_normal(a) for a in profile.aliases)):
            if key and key in text:
                score = len(key)
                if total_gib is not None and abs(profile.memory_gib - total_gib) > 0.15 * profile.memory_gib:
                    score -= 100  # an 80 GB A100 must not match the 40 GB profile
                if best is None or score > best[0]:
                    best = (score, profile)
    return best[1] if best and best[0] > 0 else None


def _with_note(profile: GpuProfile, note: str) -> GpuProfile:
    from dataclasses import replace

    return replace(profile, notes=(note, *profile.notes))
