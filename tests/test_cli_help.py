"""Every command's --help ends with an example, and the option vocabulary is the same everywhere."""

from typer.testing import CliRunner

import cli


def _commands() -> list[str]:
    return [c.name for c in cli.app.registered_commands]


def _help(name: str) -> str:
    result = CliRunner().invoke(cli.app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


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


def test_help_is_plain_text_at_80_columns():
    """Flags take no value, so none shows one; text in brackets is printed, not read as markup."""
    top = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "80"}).output
    assert "Example: compress plan" in top
    for name in _commands():
        text = CliRunner().invoke(cli.app, [name, "--help"], env={"COLUMNS": "80"}).output
        assert "<bool>" not in text, name
        assert all(len(line) <= 80 for line in text.splitlines()), name
    assert "compress[cluster]" in " ".join(_help("bench").split())
