"""`compress doctor`: what runs on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from compress.output import FORMATS, emit


def doctor_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"Output format: {', '.join(FORMATS)}.")] = "table",
    timeout: Annotated[float, typer.Option("--timeout", min=1, max=3600, help="Seconds each check may take.")] = 300,
) -> None:
    """Try each runtime (transformers, llama.cpp, ONNX Runtime, bitsandbytes, Ray, vLLM) on a tiny model
    in a child process, and say what works on this machine. Exits 1 when an installed runtime fails."""
    from dataclasses import asdict

    from compress.doctor import FAILED, diagnose, doctor_table
    from compress.isolation import cpu_summary

    checks = diagnose(timeout_s=timeout)
    emit([doctor_table(checks)], {"cpu": cpu_summary(), "checks": [asdict(c) for c in checks]}, fmt)
    if any(c.status == FAILED for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor", epilog="Example: compress doctor --format json")(doctor_command)
