"""Every command's --help reads at 80 columns and ends with an example; the option vocabulary is
the same everywhere; a usage error is one line."""

import re

import pytest
from typer.testing import CliRunner

import cli


def _commands() -> list[str]:
    return [c.name for c in cli.app.registered_commands]


def _help(name: str, columns: int = 200) -> str:
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(cli.app, args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def _options(name: str) -> dict[str, str]:
    """Each long option of a command with what precedes it on its line (its short form, if any)."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^ +(-\w, )?(--[\w-]+)", _help(name), re.M)}


def test_every_command_shows_an_example():
    assert len(_commands()) >= 9
    for name in _commands():
        assert f"Example: compress {name}" in _help(name), name


def test_one_vocabulary_of_options():
    assert "--batches" in _help("bench") and "--batch " not in _help("bench")  # the list, not an integer
    assert "--out-dir" in _help("apply") and "--out " not in _help("apply")
    for name in ("report", "review", "probe", "plan"):
        assert "--output" in _help(name) and "-o" in _help(name), name
    assert "to read from" in _help("pareto") and "to append to" in _help("bench")


def test_the_same_option_has_the_same_short_flag_everywhere():
    shorts = {"--model": "-m, ", "--gpu": "-g, ", "--format": "-f, ", "--output": "-o, "}
    for name in _commands():
        for option, short in _options(name).items():
            if option in shorts:
                assert short == shorts[option], (name, option)


def test_model_defaults_to_the_default_model_wherever_it_is_planned_or_measured():
    for name in ("plan", "review", "bench", "apply"):
        text = " ".join(_help(name).split())
        assert re.search(r"-m, --model <str> .*?\[default: \(?default", text), name


def test_review_takes_the_planning_options_of_plan():
    planning = {"--model", "--gpu", "--context", "--batch", "--gpus", "--headroom", "--objective", "--kv-dtype",
                "--engine", "--gpu-memory-utilization", "--results"}
    assert planning <= set(_options("plan")) and planning <= set(_options("review"))


@pytest.mark.parametrize("name", ["", *[c.name for c in cli.app.registered_commands]])
def test_help_reads_at_80_columns(name):
    """Flags take no value, so none shows one; no line is wider than 80; a default is never cut;
    text in brackets is printed, not read as markup; every help ends with an example."""
    text = _help(name, columns=80)
    assert "<bool>" not in text
    assert all(len(line) <= 80 for line in text.splitlines()), [line for line in text.splitlines() if len(line) > 80]
    assert "Example: compress" in text
    flat = " ".join(text.split())
    assert flat.count("[default:") == len(re.findall(r"\[default: [^\[\]]+\]", flat))
    assert "[= " not in flat and "(default:" not in flat  # one way to state a default


def test_cluster_extra_is_not_eaten_as_markup():
    assert "compress[cluster]" in " ".join(_help("bench").split())


@pytest.mark.parametrize("args, said", [
    (["plan", "--gpux", "t4"], "error: no such option: --gpux"),
    (["plan", "--batch", "x"], "error: invalid value for '--batch'"),
    (["review", "-g"], "error: option '-g' requires an argument"),
    (["nonsense"], "error: no such command 'nonsense'"),
])
def test_a_usage_error_is_one_line_that_says_where_to_look(args, said):
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(said), result.output
    assert lines[0].endswith(f"see `compress {args[0] if args[0] != 'nonsense' else ''}".rstrip() + " --help`")
