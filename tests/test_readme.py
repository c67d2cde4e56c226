"""The README's command lines run as written.

Every ``compress plan``, ``gpus`` and ``models`` line of the README's ``sh`` blocks runs through
the real CLI, ``path/to/hf-folder`` standing for the tiny test model. Every ``--model default``
variant named in an ``apply`` or ``bench`` line is checked against the default model's layer
widths (the group-size mistake that made ``gptq-4-g128`` fail on it). The ``apply`` lines without
a GPTQ step then run on the tiny model in place of ``default`` and of ``path/to/hf-folder``, with
4 calibration windows of 64 tokens instead of the default 64 x 512, so that they take seconds;
GPTQ lines take minutes on a 2-core machine and are left to tests/compress/apply/test_gptq.py,
which applies GPTQ to the same tiny model.
"""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "path/to/hf-folder"
runner = CliRunner()


def readme_commands(subcommand: str) -> list[list[str]]:
    """The argument lists of the README's ``compress SUBCOMMAND ...`` lines, comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["compress", subcommand]:
                found.append(words[1:])
    return found


def substitute(args: list[str], folder: Path) -> list[str]:
    return [str(folder) if a == PLACEHOLDER else a for a in args]


def option(args: list[str], *names: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in names:
            return args[i + 1]
    return None


def test_the_readme_has_the_commands_this_test_reads():
    assert len(readme_commands("plan")) >= 3 and len(readme_commands("apply")) >= 3
    assert readme_commands("gpus") and readme_commands("models") and readme_commands("bench")


def test_plan_gpus_and_models_lines_run(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `-o plan.json` lands here
    for args in readme_commands("plan") + readme_commands("gpus") + readme_commands("models"):
        result = runner.invoke(cli.app, substitute(args, tiny_llama))
        assert result.exit_code == 0, f"compress {' '.join(args)}: {result.output}"
    assert (tmp_path / "plan.json").is_file()


def test_default_model_variants_fit_its_layer_widths():
    """Each GPTQ/AWQ step of a `--model default` example divides SmolLM2-135M's widths (576, 1536)."""
    from compress import variants
    from compress.methods.groups import check_group_size
    from compress.planner import load_model_spec

    spec = load_model_spec("smollm2-135m")
    widths = {"hidden_size": spec.hidden, "intermediate_size": spec.intermediate}
    lines = [a for a in readme_commands("apply") + readme_commands("bench") if option(a, "--model", "-m") == "default"]
    assert lines
    for args in lines:
        for name in filter(None, [option(args, "--method"), *(option(args, "--methods") or "").split(",")]):
            for step in variants.parse(name).steps:
                if "group_size" in step.config:
                    check_group_size(step.config["group_size"], widths, name)


@pytest.mark.integration
def test_apply_lines_run_on_the_tiny_model(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = runner.invoke(cli.app, ["plan", "--model", str(tiny_llama), "--gpu", "cpu", "-o", "plan.json"])
    assert plan.exit_code == 0, plan.output
    ran = 0
    for args in readme_commands("apply"):
        if "gptq" in (option(args, "--method") or ""):
            continue
        ran += 1
        args = ["default" if a == PLACEHOLDER else a for a in args]
        args = [str(tiny_llama) if a == "default" else a for a in args]
        if option(args, "--model", "-m") is None:
            args += ["--model", str(tiny_llama)]
        result = runner.invoke(cli.app, [*args, "--calib-samples", "4", "--calib-seq-len", "64", "--device", "cpu"])
        assert result.exit_code == 0, f"compress {' '.join(args)}: {result.output}"
    assert ran >= 2
