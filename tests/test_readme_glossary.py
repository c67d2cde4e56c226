"""Every column title the commands print, and every kernel a plan names, is in the README's glossary.

The titles come from the real commands on the committed records: `plan --wide` on a GPU and on
this CPU, `gpus --wide`, `models`, `pareto --wide`, `review --wide` and the tables of `report`'s
HTML. With the glossary's terms taken out, a title may hold only units, numbers and a few plain
words; a new column with any other word fails here until the glossary defines it.
"""

import html
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = str(ROOT / "results")
UNITS = {"gib", "gb", "mib", "ms", "gb/s", "b", "bits", "x"}
PLAIN = {"name", "model", "device", "source", "references", "aliases", "family", "rank", "status", "reason",
         "why", "notes", "total", "memory", "mem", "peak", "architecture", "nominal", "test"}
#: Named in the CLI's prose (verdict, notes, help) rather than in a column title.
PROSE_TERMS = ["TTFT", "ITL", "TPOT", "goodput", "MFU", "MBU", "roofline", "KLD", "perplexity", "K-quants",
               "imatrix", "n_ubatch", "Marlin", "Machete", "CUTLASS", "sm75 … sm90", "W8A8", "SmoothQuant", "NF4",
               "GPTQ", "AWQ", "Wanda", "GGUF", "KV cache"]
runner = CliRunner()


def glossary() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("\n## Glossary\n", 1)[1].split("\n## ", 1)[0]


def glossary_terms() -> list[str]:
    """The terms of the glossary table's first column, each row naming one or more, comma-separated."""
    rows = re.findall(r"^\| (.+?) \| .+ \|$", glossary(), flags=re.M)
    return [term.strip() for row in rows for term in row.split(",")]


def undefined_words(title: str, terms: list[str]) -> list[str]:
    """The words of a column title that are neither a glossary term, a unit, a number nor plain."""
    rest = title.lower()
    for term in sorted(terms, key=len, reverse=True):
        rest = re.sub(rf"(?<![\w/]){re.escape(term.lower())}(?![\w/])", " ", rest)
    rest = re.sub(r"(?<![\w.])\d[\d.,]*b?(?!\w)", " ", rest)
    words = re.split(r"[\s(),=:+*]+", rest)
    return [w for w in words if re.search(r"\w", w) and w not in UNITS | PLAIN]


def invoke(*args: str) -> str:
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 0, f"compress {' '.join(args)}: {result.output}"
    return result.output


def md_titles(markdown: str) -> set[str]:
    """The header cells of every Markdown table: the row above each |---| line."""
    lines = markdown.splitlines()
    found = set()
    for above, line in zip(lines, lines[1:]):
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            found |= {html.unescape(c.strip().replace("\\", "")) for c in above.strip().strip("|").split("|")}
    return found


def printed_titles(tmp_path: Path) -> set[str]:
    titles = set()
    for args in (["plan", "--model", "llama-2-7b", "--gpu", "t4", "--wide"],
                 ["plan", "--model", "smollm2-135m", "--gpu", "cpu", "--wide"],
                 ["gpus", "--wide"], ["models"],
                 ["pareto", "--wide", "--results", RESULTS],
                 ["review", "--model", "smollm2-135m", "--gpu", "cpu", "--wide", "--results", RESULTS]):
        titles |= md_titles(invoke(*args, "--format", "md"))
    report = tmp_path / "report.html"
    invoke("report", "--results", RESULTS, "-o", str(report))
    titles |= {html.unescape(t).strip() for t in re.findall(r"<th[^>]*>([^<]*)", report.read_text(encoding="utf-8"))}
    return titles - {""}


def test_the_checker_finds_an_undefined_word():
    terms = glossary_terms()
    assert undefined_words("decode tok/s", terms) == []
    assert undefined_words("M GiB, P = 6.738B (architecture)", terms) == []
    assert undefined_words("warp occupancy %", terms) == ["warp", "occupancy"]


def test_every_column_title_is_defined(tmp_path):
    terms = glossary_terms()
    titles = printed_titles(tmp_path)
    assert {"TTFT ms", "KV cache GiB", "pred KLD", "bits/weight"} <= titles  # the commands were read
    undefined = {t: words for t in sorted(titles) if (words := undefined_words(t, terms))}
    assert not undefined, f"define these in README.md's glossary: {undefined}"


def test_every_kernel_a_plan_names_is_in_the_glossary():
    text = glossary()
    profiles = [g["name"] for g in json.loads(invoke("gpus", "--format", "json"))]
    kernels = set()
    for gpu in [*profiles, "cpu"]:
        plan = json.loads(invoke("plan", "--model", "llama-2-7b", "--gpu", gpu, "--format", "json"))
        kernels |= {c["kernel"] for c in plan["candidates"] if c.get("kernel")}
    assert {"marlin", "machete", "llama_cpp_cuda"} <= kernels
    assert not [k for k in sorted(kernels) if f"`{k}`" not in text]


@pytest.mark.parametrize("term", PROSE_TERMS)
def test_the_terms_of_the_prose_are_defined(term):
    assert term in glossary_terms()
