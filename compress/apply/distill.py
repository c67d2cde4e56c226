"""Knowledge distillation: train a smaller student to match the teacher's next-token distribution.

The student is either a layer-dropped copy of the teacher (layers chosen by
Block Influence, as in :mod:`compress.apply.layerdrop`) or another local model
with the same tokenizer (``--student``). Training follows Hinton et al. 2015,
"Distilling the Knowledge in a Neural Network": the KL divergence between
temperature-softened teacher and student distributions, scaled by ``T²`` so its
gradients keep their size as ``T`` changes, plus a share of ordinary
cross-entropy on the text itself. AdamW, one calibration window a step.

Every ``CHECKPOINT_EVERY`` steps the student and optimizer state go to a resume
folder in the cache, keyed by everything that decides the run, so re-running an
interrupted command continues where it stopped; the artifact holds only the
final model, and the resume folder is removed once it is written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from compress import arch as arch_table
from compress.apply import Job
from compress.apply.evaluation import EVAL_WINDOW, checkpoint_dtype, heldout_ids, perplexity
from compress.model.config import read_config
from compress.apply.layerdrop import least_important_layers
from compress.errors import UserInputError

DEFAULTS = {"steps": 200, "lr": 1e-4, "temperature": 2.0, "alpha": 0.5}
CHECKPOINT_EVERY = 50
#: Loss lines in the log per run (the progress bar shows every step).
LOG_LINES = 10


def distillation_loss(student_logits: Any, teacher_logits: Any, targets: Any, temperature: float = 2.0,
                      alpha: float = 0.5) -> tuple[Any, Any, Any]:
    """``(loss, kl, ce)`` with ``loss = α·T²·KL(p_t^T ‖ p_s^T) + (1 − α)·CE(s, targets)``.

    ``p^T = softmax(logits / T)`` (Hinton et al. 2015, §2); the KL is averaged
    over token positions. Logits are ``[..., vocab]``, targets the matching
    next-token ids ``[...]``.
    """
    import torch.nn.functional as F

    vocab = student_logits.shape[-1]
    s = student_logits.reshape(-1, vocab).float()
    t = teacher_logits.reshape(-1, vocab).float()
    kl = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1),
                  log_target=True, reduction="batchmean")
    ce = F.cross_entropy(s, targets.reshape(-1))
    return alpha * temperature**2 * kl + (1 - alpha) * ce, kl, ce


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's hyperparameters: defaults overridden by the step's config, checked."""
    s = {key: config.get(key, default) for key, default in DEFAULTS.items()}
    if not isinstance(s["steps"], int) or s["steps"] < 1:
        raise UserInputError(f"--steps must be a positive integer, got {s['steps']!r}")
    if not s["lr"] > 0:
        raise UserInputError(f"--lr must be positive, got {s['lr']}")
    if not s["temperature"] > 0:
        raise UserInputError(f"--temperature must be positive, got {s['temperature']}")
    if not 0 <= s["alpha"] <= 1:
        raise UserInputError(f"--alpha is the weight of the KL term, between 0 and 1, got {s['alpha']}")
    return s


def apply(job: Job) -> dict[str, Any]:
    from compress.loading import load_causal_lm, load_tokenizer, torch_dtype

    hp = settings(job.config)
    n_student = job.config["student_layers"]
    teacher_dir = job.hf_dir()
    teacher_config = read_config(teacher_dir)
    arch = arch_table.lookup_config(teacher_config)
    n_teacher = teacher_config[arch.layer_count_key]
    tokenizer = load_tokenizer(teacher_dir)
    student_dir = None
    if job.config.get("student"):
        student_dir = _student_folder(job.config["student"], tokenizer, teacher_config, n_student)
    if student_dir is None and not 1 <= n_student < n_teacher:
        raise UserInputError(
            f"a layer-dropped student needs between 1 and {n_teacher - 1} layers (the teacher has {n_teacher}), got {n_student}"
        )

    # Training runs in float32; the student is saved in the dtype its weights came in.
    teacher = load_causal_lm(teacher_dir, dtype="float32", device=job.device)
    teacher.requires_grad_(False)
    windows = job.calibration_windows(tokenizer)
    info: dict[str, Any] = {}
    if student_dir is None:
        dropped, scores = least_important_layers(teacher, arch, windows, n_teacher - n_student, job)
        student = copy.deepcopy(teacher)
        arch_table.keep_layers(student, arch, [i for i in range(n_teacher) if i not in dropped])
        info.update(student="layer-dropped teacher", dropped_layers=dropped, importance=[round(s, 6) for s in scores])
        job.log(f"student: teacher without layers {dropped} ({n_student} of {n_teacher} layers)")
    else:
        student = load_causal_lm(student_dir, dtype="float32", device=job.device)
        info.update(student=str(student_dir))
    student.requires_grad_(True)

    eval_ids = heldout_ids(tokenizer)
    ppl_teacher = perplexity(teacher, eval_ids, job.device)
    ppl_before = perplexity(student, eval_ids, job.device)
    kl_before = heldout_kl(teacher, student, eval_ids, job.device)
    losses = train(teacher, student, windows, hp, job)
    ppl_after = perplexity(student, eval_ids, job.device)
    kl_after = heldout_kl(teacher, student, eval_ids, job.device)
    job.log(f"perplexity on {len(eval_ids)} held-out tokens: teacher {ppl_teacher:.2f}, "
            f"student {ppl_before:.2f} → {ppl_after:.2f} after {hp['steps']} steps "
            f"(KL to the teacher {kl_before:.4f} → {kl_after:.4f})")

    student.to(dtype=torch_dtype(checkpoint_dtype(read_config(student_dir) if student_dir else teacher_config)))
    student.save_pretrained(job.out_dir)
    tokenizer.save_pretrained(job.out_dir)
    shutil.rmtree(_resume_dir(job), ignore_errors=True)
    return {
        "format": "hf", "runtime": "transformers", **info, **hp,
        "student_layers": student.config.num_hidden_layers, "teacher_layers": n_teacher,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "perplexity_teacher": round(ppl_teacher, 4),
        "perplexity_before": round(ppl_before, 4), "perplexity_after": round(ppl_after, 4),
        "kl_to_teacher_before": round(kl_before, 6), "kl_to_teacher_after": round(kl_after, 6),
        "eval_tokens": len(eval_ids),
    }


def heldout_kl(teacher: Any, student: Any, ids: list[int], device: str, window: int = EVAL_WINDOW) -> float:
    """Mean per-token ``KL(p_teacher ‖ p_student)`` at temperature 1 over windows of held-out ``ids``."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]], device=device)
            _, kl, _ = distillation_loss(student(chunk, use_cache=False).logits, teacher(chunk, use_cache=False).logits,
                                         chunk, temperature=1.0, alpha=1.0)
            total += kl.item() * chunk.shape[1]
            count += chunk.shape[1]
    return total / count


def train(teacher: Any, student: Any, windows: list[list[int]], hp: dict[str, Any], job: Job) -> list[float]:
    """Run the distillation steps; return the loss of every step. Resumes from a checkpoint if one exists."""
    import torch

    steps = hp["steps"]
    generator = torch.Generator().manual_seed(job.options.seed)
    # The whole window order is drawn up front so a resumed run sees the same sequence.
    order: list[int] = []
    while len(order) < steps:
        order += torch.randperm(len(windows), generator=generator).tolist()
    optimizer = torch.optim.AdamW(student.parameters(), lr=hp["lr"])
    losses: list[float] = []
    resume = _resume_dir(job) / "state.pt"
    if resume.exists():
        state = torch.load(resume, map_location=job.device, weights_only=True)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        losses = state["losses"]
        job.log(f"resuming distillation at step {len(losses)} of {steps} from {resume.parent}")
    student.train()
    log_every = max(1, steps // LOG_LINES)
    with _progress(steps, len(losses)) as advance:
        for step in range(len(losses), steps):
            ids = torch.tensor([windows[order[step]]], device=job.device)
            with torch.no_grad():
                teacher_logits = teacher(ids, use_cache=False).logits[:, :-1]
            student_logits = student(ids, use_cache=False).logits[:, :-1]
            loss, kl, ce = distillation_loss(student_logits, teacher_logits, ids[:, 1:], hp["temperature"], hp["alpha"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            advance(losses[-1])
            if (step + 1) % log_every == 0 or step + 1 == steps:
                job.log(f"step {step + 1}/{steps}: loss {losses[-1]:.4f} (KL {kl.item():.4f}, CE {ce.item():.4f})")
            if (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < steps:
                _save_state(resume, {"student": student.state_dict(), "optimizer": optimizer.state_dict(), "losses": losses})
    student.eval()
    return losses


def _progress(total: int, done: int) -> Any:
    """A progress bar on stderr that shows the latest loss; yields ``advance(loss)``."""
    import contextlib

    from rich.progress import TextColumn

    from compress.progress import enabled, new_bar

    @contextlib.contextmanager
    def bar() -> Any:
        if not enabled():  # --quiet, or stderr is not a terminal
            yield lambda loss: None
            return
        with new_bar(fields=(TextColumn("loss {task.fields[loss]}"),)) as progress:
            task = progress.add_task("distilling", total=total, completed=done, loss="-")
            yield lambda loss: progress.update(task, advance=1, loss=f"{loss:.4f}")

    return bar()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a resume checkpoint whole or not at all."""
    import torch

    tmp = path.with_suffix(".partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume_dir(job: Job) -> Path:
    """The resume folder of this exact run: same source, config and calibration options."""
    from compress.paths import cache_dir

    decided_by = {"source": job.source.fingerprint(), "config": job.config,
                  "options": {k: v for k, v in job.options.to_dict().items() if k not in ("force", "device")}}
    key = hashlib.sha256(json.dumps(decided_by, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir("distill-resume", key)


def _student_folder(student: str, teacher_tokenizer: Any, teacher_config: dict[str, Any], n_student: int) -> Path:
    """The HF folder of a ``--student`` model, after checking it can learn from this teacher."""
    from compress.loading import hf_checkpoint, load_tokenizer, trust_remote_code
    from compress.sources import resolve

    folder = hf_checkpoint(resolve(student, trust_remote_code=trust_remote_code()))
    config = read_config(folder)
    arch = arch_table.lookup_config(config)
    theirs, ours = load_tokenizer(folder).get_vocab(), teacher_tokenizer.get_vocab()
    if theirs != ours:
        differing = len(set(theirs.items()) ^ set(ours.items()))
        raise UserInputError(
            f"student {student} has a different tokenizer from the teacher ({len(theirs)} vs {len(ours)} tokens, "
            f"{differing} entries differ): distillation compares logits token by token, so both must share one"
        )
    if config.get("vocab_size") != teacher_config.get("vocab_size"):
        raise UserInputError(
            f"student {student} has {config.get('vocab_size')} output logits, the teacher "
            f"{teacher_config.get('vocab_size')}: distillation needs both to score the same vocabulary"
        )
    if config[arch.layer_count_key] != n_student:
        raise UserInputError(
            f"student {student} has {config[arch.layer_count_key]} layers but the variant asks for {n_student}: "
            f"use --method distill-{config[arch.layer_count_key]} with this student"
        )
    return folder
