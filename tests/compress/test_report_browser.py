"""The dashboard of the committed results, laid out by headless Chromium at a desktop and a phone width.

One browser run loads a page holding the report twice, in frames 1400 and 390 CSS pixels wide
(headless Chromium will not make its own window narrower than 500). A script added to each
copy records script errors and console errors from the first line on, and once the page has
loaded writes what it measured into the outer page, which ``--dump-dom`` returns: whether
the page is wider than its frame, whether any name in the tables wraps onto a second line,
and whether the last column of each table (the status, the failure's reason) can be reached.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from compress import results
from compress.measure.predictions import with_current_predictions
from compress.report import render_report

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = (1400, 390)
NAME_COLUMNS = ("model", "variant", "device", "runtime", "test")

# Runs before the report's own script: every error and console error is kept.
CATCH = """<script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));
const __ce=console.error;console.error=(...a)=>{__errors.push(a.join(' '));__ce.apply(console,a)};</script>"""
# Runs once the report has loaded: what a reader at this width could not see or reach.
MEASURE = """<script>addEventListener('load',()=>{
const w=innerWidth,names=['NAMES'],out={width:w,scroll:document.documentElement.scrollWidth,errors:__errors,
  wrapped:[],unreachable:[]};
document.querySelectorAll('table').forEach(t=>{
  const heads=Array.from(t.tHead.rows[0].cells).map(h=>h.textContent);
  Array.from(t.tBodies[0].rows).forEach(row=>Array.from(row.cells).forEach((td,i)=>{
    if(!names.includes(heads[i])||!td.firstChild)return;
    const r=document.createRange();r.selectNodeContents(td);
    const tops=new Set(Array.from(r.getClientRects()).map(x=>Math.round(x.top)));
    if(tops.size>1)out.wrapped.push(td.textContent)}));
  const last=t.tHead.rows[0].cells[t.tHead.rows[0].cells.length-1],box=t.parentElement;
  const scrolls=getComputedStyle(box).overflowX==='auto'&&box.getBoundingClientRect().right<=w+1;
  const cell=t.tBodies[0].rows[0].cells[t.tBodies[0].rows[0].cells.length-1].getBoundingClientRect();
  if(!(cell.right<=w+1||scrolls))out.unreachable.push(t.id+': '+last.textContent)});
parent.document.getElementById('w'+w).textContent=JSON.stringify(out)});</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _host(report: str) -> str:
    """The outer page: the report in a frame of each width, and a place for each frame's findings."""
    probed = report.replace("<head>", "<head>" + CATCH, 1).replace(
        "</body>", MEASURE.replace("'NAMES'", ",".join(f"'{c}'" for c in NAME_COLUMNS)) + "</body>", 1)
    frames = "".join(f'<pre id="w{w}"></pre><iframe srcdoc="{html.escape(probed, quote=True)}" '
                     f'style="border:0;width:{w}px;height:900px;display:block"></iframe>' for w in WIDTHS)
    return f"<!DOCTYPE html><html><body style=\"margin:0\">{frames}</body></html>"


def _measure(browser: str, page: Path) -> dict[int, dict]:
    with tempfile.TemporaryDirectory(prefix="compress-chromium-") as profile:
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             f"--window-size={max(WIDTHS) + 40},1000", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": profile}).stdout
    found = {int(w): json.loads(html.unescape(text)) for w, text in re.findall(r'<pre id="w(\d+)">([^<]+)</pre>', dom)}
    assert set(found) == set(WIDTHS), f"the report's script did not report back at every width: {dom[:500]}"
    return found


@pytest.mark.browser
def test_the_committed_results_read_at_desktop_and_phone_width(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium): the layout is unchecked here")
    files = sorted((ROOT / "results").glob("*.jsonl"))
    records = with_current_predictions(results.load(files, provenance=True))  # as `compress report` shows them
    page = tmp_path / "host.html"
    page.write_text(_host(render_report(records)))
    for width, seen in _measure(browser, page).items():
        assert seen["width"] == width
        assert seen["errors"] == [], f"{width} px: script errors {seen['errors']}"
        assert seen["scroll"] <= width, f"{width} px: the page is {seen['scroll']} px wide"
        assert seen["wrapped"] == [], f"{width} px: names broken across lines {seen['wrapped']}"
        assert seen["unreachable"] == [], f"{width} px: last columns out of reach {seen['unreachable']}"


def test_the_probe_catches_what_it_checks(tmp_path):
    """The checks above can fail: a page wider than its frame, a name that wraps, a script error."""
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium): the layout is unchecked here")
    bad = ("<html><head></head><body><div style=\"width:1600px\">wide</div><table><thead><tr><th>variant</th>"
           "</tr></thead><tbody><tr><td style=\"width:3em;display:block\">gptq-4-g64 "
           "gptq-4-g64</td></tr></tbody></table><script>undefinedCall()</script></body></html>")
    page = tmp_path / "host.html"
    page.write_text(_host(bad))
    seen = _measure(browser, page)[390]
    assert seen["scroll"] > 390 and seen["wrapped"] and any("undefinedCall" in e for e in seen["errors"])
