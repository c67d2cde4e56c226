"""The HTML report: self-contained, escaped, and working in a real (headless) browser."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from compress import results
from compress.report import esc, page, render_report, table_html, write_report

GIB = 2**30
EVIL = '<script>alert("x")</script>'


def _records(variant_names=("fp32", "q8_0", "q4_k_m"), model="smollm2"):
    out = []
    for i, name in enumerate(variant_names):
        common = {"model": model, "model_fingerprint": "f", "variant": name, "device": "cpu", "runtime": "rt"}
        out += [
            results.record(**common, test="ppl", metric="perplexity", value=20.0 + i, samples=[20.0 + i]),
            results.record(**common, test="tg32", metric="decode_tok_s", value=10.0 * (i + 1),
                           samples=[9.0 * (i + 1), 10.0 * (i + 1), 11.0 * (i + 1)], predicted=12.0 * (i + 1),
                           prediction_error_pct=-16.7),
            results.record(**common, test="tg32", metric="itl_ms", value=100.0 / (i + 1),
                           samples=[100.0 / (i + 1), 90.0 / (i + 1)]),
            results.record(**common, test="pp128", metric="ttft_ms", value=500.0 / (i + 1), samples=[500.0 / (i + 1)]),
            results.record(**common, test="memory", metric="peak_memory_bytes", value=(2 - i * 0.5) * GIB,
                           predicted=1.8 * GIB, prediction_error_pct=5.0),
        ]
    return out


def test_everything_from_records_is_escaped():
    records = _records(variant_names=("fp32", EVIL), model=EVIL)
    records.append(results.record(model=EVIL, model_fingerprint="f", variant=EVIL, device="cpu", test="apply",
                                  metric=None, value=None, status="failed", error=EVIL))
    text = render_report(records)
    assert EVIL not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    # the only script element is our own sorting code
    assert text.count("<script>") == 1


def test_report_is_self_contained():
    text = render_report(_records())
    assert not re.search(r"""(src|href)=["']?https?://""", text)
    assert "<svg" in text and 'id="pareto-plot"' in text and 'id="pred-decode_tok_s"' in text
    assert 'id="strip-itl_ms"' in text


def test_table_html_keeps_numbers_sortable():
    text = table_html(["a", "b"], [["x<y", 1.5]], "t")
    assert 'data-v="1.5"' in text and "x&lt;y" in text
    assert esc('"') == "&quot;" and "<title>&lt;b&gt;</title>" in page("<b>", "")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _dump_dom(browser, path):
    profile = tempfile.mkdtemp()
    try:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--dump-dom", f"file://{path}"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": profile}).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _table(dom, table_id):
    table = dom[dom.index(f'id="{table_id}"'):]
    return table[: table.index("</table>")]


@pytest.mark.browser
def test_report_renders_and_sorts_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium) - the report's JS is untested here")
    out = write_report(_records(variant_names=("q4_k_m", "fp32", EVIL)), tmp_path / "report.html")
    dom = _dump_dom(browser, out)
    assert "<svg" in dom and 'id="pareto-plot"' in dom and 'id="pred-peak_memory_gib"' in dom
    table = _table(dom, "pareto-table")
    assert 'data-sorted-by="3"' in table and 'class="sorted-asc"' in table  # set only by the script
    variants = re.findall(r"<tr[^>]*><td[^>]*>([^<]*)</td>", table)
    assert variants == ["q4_k_m", "fp32", html.escape(EVIL, quote=False)]  # perplexity 20, 21, 22
    assert "<script>alert" not in dom

    # rows given out of order: the script must sort them numerically (9 < 10 < 100; as text 10 < 100 < 9)
    sort_page = tmp_path / "sort.html"
    sort_page.write_text(page("sort", table_html(["name", "n"], [["b", 10], ["c", 100], ["a", 9]], "t", sort_col=1)))
    names = re.findall(r'<td[^>]*class="text"[^>]*>([^<]*)</td>', _table(_dump_dom(browser, sort_page), "t"))
    assert names == ["a", "b", "c"]


def test_quality_plot_sets_predicted_against_measured():
    records = _records()
    for i, name in enumerate(("q8_0", "q4_k_m"), 1):
        common = {"model": "smollm2", "model_fingerprint": "f", "variant": name, "device": "cpu", "runtime": "rt"}
        records += [results.record(**common, test="ppl", metric="ln_ppl_ratio", value=0.01 * i, predicted=0.005 * i),
                    results.record(**common, test="ppl", metric="kld_mean", value=0.02 * i, predicted=0.01 * i)]
    html = render_report(records)
    assert 'id="pred-ppl_delta_pct"' in html and 'id="pred-kld_mean"' in html
    assert "How to read" in html
    assert "pred-ppl_delta_pct" not in render_report(_records())  # no quality records, no empty plot
def _svg(text, svg_id):
    return re.search(rf'<svg id="{svg_id}".*?</svg>', text, re.S).group(0)


def _caption(text, svg_id):
    return re.search(rf'<svg id="{svg_id}".*?</svg><figcaption>(.*?)</figcaption>', text, re.S).group(1)


def test_each_plot_says_how_to_read_it_and_what_the_diagonal_means():
    text = render_report(_records())
    for svg_id in ("pareto-plot", "pred-decode_tok_s", "pred-peak_memory_gib", "strip-ttft_ms", "strip-itl_ms"):
        assert "How to read:" in _caption(text, svg_id), svg_id
    # above the diagonal: faster than predicted for speed, but MORE memory than predicted for memory
    assert "faster than predicted" in _caption(text, "pred-decode_tok_s")
    assert "more memory than predicted" in _caption(text, "pred-peak_memory_gib")
    assert "beat the planner" not in text


def test_log_axes_say_so_and_tick_at_round_values():
    svg = _svg(render_report(_records()), "pred-decode_tok_s")
    assert "predicted tok/s (log scale)" in svg and "measured tok/s (log scale)" in svg
    ticks = re.findall(r'font-size="11">([0-9.,]+)</text>', svg)
    assert ticks and all(t.replace(",", "").lstrip("0.").rstrip("0").rstrip(".") in ("1", "2", "5") for t in ticks), ticks


def test_strip_plot_draws_every_repetition_clear_of_the_labels():
    from compress.plots import LABEL_W

    records = _records()
    svg = _svg(render_report(records), "strip-decode_tok_s").split('<g class="legend">')[0]
    dots = [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', svg)]
    assert len(dots) == sum(len(r["samples"]) for r in records if r["metric"] == "decode_tok_s")
    assert min(dots) > LABEL_W  # no dot on a variant's label


def test_several_models_get_headings_and_a_legend():
    text = render_report(_records(model="model-a") + _records(model="model-b"))
    strip = _svg(text, "strip-ttft_ms")
    assert 'font-weight="bold">model-a</text>' in strip and 'font-weight="bold">model-b</text>' in strip
    assert strip.count("fp32 cpu</text>") == 2  # one row per model, not one overwriting the other
    assert ">model-a</text>" in _svg(text, "pred-peak_memory_gib")


def test_every_mark_stays_inside_its_axes():
    from compress.plots import BOTTOM, H, LEFT, RIGHT, TOP, W

    records = _records(variant_names=("fp32", "q8_0", "q4_k_m", "q2_k"))
    records[0]["value"] = 0.0  # a perplexity at the axis floor, and the largest bubble at the edges
    text = render_report(records)
    for svg_id in ("pareto-plot", "pred-decode_tok_s", "pred-peak_memory_gib"):
        marks = _svg(text, svg_id).split('<g class="legend">')[0]
        circles = [tuple(map(float, c)) for c in re.findall(r'<circle cx="([-0-9.]+)" cy="([-0-9.]+)" r="([0-9.]+)"',
                                                              marks)]
        assert circles, svg_id
        for cx, cy, r in circles:
            assert LEFT <= cx - r and cx + r <= W - RIGHT and TOP <= cy - r and cy + r <= H - BOTTOM, (svg_id, cx, cy, r)


def test_every_plot_has_a_legend_for_its_colours_and_sizes():
    text = render_report(_records())
    pareto = _svg(text, "pareto-plot").split('<g class="legend">')[1]
    assert ">smollm2</text>" in pareto and "on the front" in pareto and "GiB peak memory" in pareto
    assert "predicted = measured" in _svg(text, "pred-decode_tok_s").split('<g class="legend">')[1]
    assert ">median</text>" in _svg(text, "strip-ttft_ms").split('<g class="legend">')[1]


def test_an_empty_section_says_why_and_what_fills_it():
    only_ppl = [r for r in _records() if r["metric"] == "perplexity"]
    text = render_report(only_ppl)
    for heading, why in (("Latency distributions", "run `compress bench --tests tg,pp`"),
                         ("Served load", "no serve records in these results: run `compress bench --tests serve`"),
                         ("Predicted vs measured quality", "run `compress bench --tests ppl`"),
                         ("Pareto front", "has both its perplexity and its decode speed measured"),
                         ("Failed and skipped tests", "every test in these results ran")):
        after = text[text.index(f"<h2>{heading}</h2>"):]
        assert after.startswith(f'<h2>{heading}</h2><p class="empty">') and why in after.split("</p>")[0], heading


def test_a_failure_names_the_runtime_it_ran_in_and_its_whole_cause():
    failed = results.record(model="m", model_fingerprint="f", variant="gptq-4-g64", device="cpu",
                            runtime="transformers", test="load", metric=None, value=None, status="failed",
                            bench_settings={"runtime": "vllm"},
                            error="RuntimeFailure: vLLM load failed: RuntimeError: Engine core initialization "
                                  "failed. See root cause above. Failed core proc(s): {'EngineCore': 1}")
    text = render_report(_records() + [failed])
    row = re.search(r'<table class="sortable cards" id="failures">.*?</table>', text, re.S).group(0)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[:6] == ["m", "gptq-4-g64", "cpu", "vllm", "load", "failed"]
    assert "Failed core proc(s)" in html.unescape(cells[6]) and "did not keep" in cells[6]


def test_served_tests_are_a_table_of_their_own():
    common = {"model": "m", "model_fingerprint": "f", "variant": "fp32", "device": "cpu", "runtime": "vllm"}
    served = [results.record(**common, test="serve-c4", metric="ttft_ms", value=601.0, samples=[601.0]),
              results.record(**common, test="serve-c4", metric="goodput_req_s", value=0.25)]
    text = render_report(_records() + served)
    table = re.search(r'id="serve">.*?</table>', text, re.S).group(0)
    assert "TTFT ms" in table and "goodput req/s" in table and ">serve-c4<" in table
    assert 'data-v="601.0"' in table
