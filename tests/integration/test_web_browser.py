"""The console in a real headless browser (Debian's chromium, driven through its
chromium-driver by selenium) against a real daemon: the tree, the graph and the
timeline show the statuses the journal holds, a unit's events and its output followed
while its job runs, an operator's action from the page changes the journal, a
viewer's is refused, and the page updates by itself when a job ends. Screenshots of
each view go to $AJS3_WEB_SCREENSHOTS when set (docs/ for the documentation), else to
the test's temporary directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, wait_for
from webserve import OPERATOR, SETTINGS, VIEWER, WebConsole

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None or shutil.which("dot") is None,
    reason="needs chromium, chromium-driver and graphviz (install.sh --dev installs them)",
)

DEFS = """
group: /shop
jobnets:
  - name: nightly
    units:
      - name: extract
        command: [/bin/sh, -c, 'echo extracted 42 rows']
      - name: sub
        type: jobnet
        after: [extract]
        units:
          - name: s1
            command: [/bin/true]
          - name: s2
            command: [/bin/true]
            after: [s1]
      - name: load
        command: [/bin/sh, -c, 'echo loading; exit 2']
        after: [sub]
      - name: cleanup
        command: [/bin/true]
        recovery: true
        after: [load]
  - name: gated
    units:
      - name: wait
        command: [/bin/sh, -c, 'echo at the gate; while [ ! -e {half} ]; do sleep 0.05; done;
          echo half way; while [ ! -e {gate} ]; do sleep 0.05; done; echo opened']
      - name: report
        command: [/bin/true]
        after: [wait]
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(DRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("AJS3_WEB_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def attr(driver: Any, selector: str, name: str) -> str | None:
    return js(
        driver,
        "const n = document.querySelector(arguments[0]);"
        " return n ? n.getAttribute(arguments[1]) : null;",
        selector,
        name,
    )


def click(driver: Any, selector: str) -> None:
    """Click what ``selector`` finds now (the page re-renders on its own: an element
    found earlier may be gone)."""
    wait_for(
        lambda: js(
            driver,
            "const n = document.querySelector(arguments[0]); if (n) n.dispatchEvent("
            "new MouseEvent('click', {bubbles: true})); return !!n;",
            selector,
        ),
        60,
        selector,
    )


def text(driver: Any, element_id: str) -> str:
    return str(js(driver, "return document.getElementById(arguments[0]).textContent", element_id))


def sign_in(driver: Any, url: str, token: str) -> None:
    driver.get(url + "/")
    js(driver, "sessionStorage.clear()")
    driver.get(url + "/")
    driver.find_element("id", "token").send_keys(token)
    driver.find_element("css selector", "#signin button").click()
    wait_for(lambda: driver.find_element("id", "who").text, 60, "signed in")


def test_the_console_in_a_headless_browser(make_lhost: Any, browser: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    host: LogicalHost = make_lhost("wbrowse")
    host.write_settings(SETTINGS)
    host.start()
    host.define(DEFS.format(gate=gate, half=tmp_path / "half"))
    nightly = host.entry("/shop/nightly")
    host.wait(nightly)
    console = WebConsole(host)
    out = shots(tmp_path)
    try:
        sign_in(browser, console.url, OPERATOR)
        root = dict(
            host.journal_query("SELECT path, status FROM unit_runs WHERE jobnet_run=?", (nightly,))
        )
        # the tree shows the journal's status of the latest run
        sel = 'li.jobnet[data-jobnet="/shop/nightly"]'
        wait_for(lambda: attr(browser, sel, "data-status") == root["/shop/nightly"], 60, "tree")
        assert attr(browser, 'li.jobnet[data-jobnet="/shop/gated"]', "data-status") == ""
        click(browser, sel)

        # the graph: one node per unit, filled in its status' colour
        wait_for(
            lambda: attr(browser, '#graph g.node[data-path="/shop/nightly/load"]', "id"),
            60,
            "graph",
        )
        fills = js(
            browser,
            """
            const out = {};
            for (const g of document.querySelectorAll('#graph g.node')) {
              const shape = g.querySelector('polygon, path, ellipse');
              out[g.getAttribute('data-path')] = shape ? shape.getAttribute('fill') : null;
            }
            return out;""",
        )
        from ajs3.web.graph import COLOURS

        for path in ("/shop/nightly/extract", "/shop/nightly/load", "/shop/nightly/cleanup"):
            assert fills[path] == COLOURS[root[path]], (path, fills, root)
        # a nested jobnet is a box around its units; a click folds it into one node
        assert fills["/shop/nightly/sub/s2"] == COLOURS[root["/shop/nightly/sub/s2"]]
        click(browser, '#graph g.cluster[data-jobnet="/shop/nightly/sub"] text')
        folded = '#graph g.node[data-jobnet="/shop/nightly/sub"]'
        wait_for(lambda: attr(browser, folded, "id"), 60, "folded")
        assert attr(browser, '#graph g.node[data-path="/shop/nightly/sub/s1"]', "id") is None
        click(browser, folded)
        wait_for(
            lambda: attr(browser, '#graph g.node[data-path="/shop/nightly/sub/s1"]', "id"),
            60,
            "unfolded",
        )
        # a click on a unit of the graph shows its details
        click(browser, '#graph g.node[data-path="/shop/nightly/load"]')
        wait_for(lambda: text(browser, "unit-title") == "/shop/nightly/load", 60, "unit")
        wait_for(lambda: "loading" in text(browser, "unit-output"), 60, "its output")
        # the run's table says the same
        wait_for(
            lambda: (
                attr(browser, 'tr.unit[data-path="/shop/nightly/load"]', "data-status")
                == root["/shop/nightly/load"]
            ),
            60,
            "units table",
        )
        # the timeline: a bar for the run, in the journal's status
        bar = f'#timeline rect.bar[data-run="{nightly}"]'
        wait_for(lambda: attr(browser, bar, "data-status") == root["/shop/nightly"], 60, "timeline")
        # a unit's details: why and its output
        click(browser, 'tr.unit[data-path="/shop/nightly/extract"]')
        wait_for(
            lambda: "extracted 42 rows" in text(browser, "unit-output"),
            60,
            "output",
        )
        # its events: the journal's status changes, one row each, and where it ran
        changes = host.journal_query(
            "SELECT e.new FROM events e JOIN unit_runs u ON u.id = e.unit_run"
            " WHERE u.jobnet_run=? AND u.path='/shop/nightly/extract' ORDER BY e.id",
            (nightly,),
        )
        wait_for(
            lambda: (
                js(
                    browser,
                    "return [...document.querySelectorAll('#unit-events tr.event')]"
                    ".map((r) => r.dataset.status)",
                )
                == [new for (new,) in changes]
            ),
            60,
            "events",
        )
        assert "logical host's node" in text(browser, "unit-host")
        assert text(browser, "unit-events").count("running") >= 1
        host_cell = 'tr.unit[data-path="/shop/nightly/extract"] td.host'
        assert js(browser, f"return document.querySelector('{host_cell}').textContent") == "-"
        browser.save_screenshot(str(out / "web-console.png"))
        browser.find_element("id", "graph").screenshot(str(out / "web-graph.png"))
        browser.find_element("id", "timeline").screenshot(str(out / "web-timeline.png"))

        # an operator's action from the page changes the journal
        click(browser, 'li.jobnet[data-jobnet="/shop/gated"]')
        wait_for(lambda: text(browser, "jobnet-title") == "/shop/gated", 60)
        before = host.journal_query("SELECT count(*) FROM jobnet_runs WHERE jobnet='/shop/gated'")
        assert before == [(0,)]
        click(browser, '#jobnet-actions button[data-action="entry"]')
        wait_for(
            lambda: (
                host.journal_query("SELECT count(*) FROM jobnet_runs WHERE jobnet='/shop/gated'")
                == [(1,)]
            ),
            60,
            "entry",
        )
        run = host.journal_query("SELECT id FROM jobnet_runs WHERE jobnet='/shop/gated'")[0][0]
        audit = host.journal_query("SELECT args FROM audit WHERE op='entry' ORDER BY id DESC")
        assert '"on_behalf": "web:alice"' in audit[0][0]
        row = 'tr.unit[data-path="/shop/gated/wait"]'
        wait_for(lambda: attr(browser, row, "data-status") == "running", 60, "running shown")
        # its output is followed while it runs: what it writes later, with no change of
        # status to make the page read it again, is shown
        click(browser, row)
        wait_for(lambda: "at the gate" in text(browser, "unit-output"), 60, "output so far")
        assert attr(browser, "#unit-output", "data-ended") == "false"
        (tmp_path / "half").touch()
        wait_for(lambda: "half way" in text(browser, "unit-output"), 60, "output followed")
        assert attr(browser, "#unit-output", "data-ended") == "false"
        assert host.units(run)["/shop/gated/wait"]["status"] == "running"

        # the page updates by itself (server-sent events) when the job ends: no reload
        marker = js(browser, "window.__same_page = true; return true;")
        assert marker
        gate.touch()
        host.wait(run)
        wait_for(lambda: attr(browser, row, "data-status") == "ended_normally", 60, "update")
        wait_for(lambda: attr(browser, "#unit-output", "data-ended") == "true", 60, "output end")
        assert text(browser, "unit-output") == "at the gate\nhalf way\nopened\n"
        wait_for(
            lambda: (
                attr(browser, 'li.jobnet[data-jobnet="/shop/gated"]', "data-status")
                == "ended_normally"
            ),
            60,
            "tree update",
        )
        assert js(browser, "return window.__same_page === true")
        assert text(browser, "live") == "● live"

        # a viewer's action is refused, and nothing changes in the journal
        sign_in(browser, console.url, VIEWER)
        wait_for(
            lambda: attr(browser, 'li.jobnet[data-jobnet="/shop/gated"]', "data-status"),
            60,
            "viewer tree",
        )
        click(browser, 'li.jobnet[data-jobnet="/shop/gated"]')
        wait_for(lambda: text(browser, "jobnet-title") == "/shop/gated", 60)
        click(browser, '#jobnet-actions button[data-action="entry"]')
        wait_for(lambda: "AJS3-E316" in text(browser, "message"), 60, "refused")
        assert host.journal_query(
            "SELECT count(*) FROM jobnet_runs WHERE jobnet='/shop/gated'"
        ) == [(1,)]
        browser.save_screenshot(str(out / "web-viewer-refused.png"))
    finally:
        console.stop()
