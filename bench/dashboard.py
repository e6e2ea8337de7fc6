"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real daemon (figures 18, 19).

18: the jobs page with a large job table, from navigation to the table's first rows; beside it the
    list route's p99 on the same table (the route figure 7a measures).
19: a task's large output followed live in the job page to its last line, and the daemon's RSS
    while 10 tabs follow the same job, against its idle RSS.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import figures
from harness import Daemon, Figure, bench_daemon, percentile, rss_mb

GROUPS = ("18", "19")  # what bench/run.py asks of this module
CHROMIUM = "/usr/bin/chromium"
FIRST_ROW = "#jobs-rows tr[data-job]"
# True once the log's last element reads `last`: then the page's Date.now(), to set against the log file's first byte.
SHOWN = """last => {
  const element = document.getElementById('log').lastElementChild;
  return element !== null && element.textContent === last ? Date.now() : false;
}"""
TAIL = " the quick brown fox jumps over the lazy dog"  # what the sample task's `lines N` appends to each number


@dataclass
class DashboardScale:
    table_jobs: int
    page_loads: int
    list_requests: int
    log_bytes: int
    tabs: int

    @classmethod
    def full(cls) -> DashboardScale:
        return cls(100_000, 5, 500, 50 * 1000**2, 10)

    @classmethod
    def quick(cls) -> DashboardScale:
        return cls(2_000, 3, 50, 2 * 1000**2, 10)


def _ui_daemon() -> Daemon:
    return bench_daemon("--port", str(figures._free_port()))


def _sign_in(daemon: Daemon, browser: Any) -> Any:
    """A browser context holding a session: `tao ui --no-browser` gives a one-time link, opened once."""
    made = daemon.tao("ui", "--no-browser")
    if made.returncode != 0:
        raise RuntimeError(f"tao ui: {made.stderr.decode(errors='replace')}")
    link = made.stdout.decode().strip()
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    page.wait_for_url("**/ui/")
    page.close()
    return context


def _tcp_base(daemon: Daemon) -> str:
    addresses = daemon.request("GET", "/v1/info")["daemon"]["addresses"]
    return str(next(address for address in addresses if address.startswith("http://127.0.0.1:")))


def _browser(driver: Any) -> Any:
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"chromium is not installed at {CHROMIUM}: scripts/prepare installs it")
    return driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def jobs_page(scale: DashboardScale) -> list[Figure]:
    """Figure 18: /ui/ with `table_jobs` jobs, navigation to first rows; 18b: GET /v1/jobs first page p99."""
    from playwright.sync_api import sync_playwright

    daemon = _ui_daemon()
    daemon.start()
    daemon.stop()  # the schema is made; now fill it while no daemon holds it
    started = time.perf_counter()
    db = daemon.data_dir / "tao.db"
    figures.fill_table(db, scale.table_jobs)
    with sqlite3.connect(db) as connection:  # the caller's own jobs, as a user who is not an admin would see them
        connection.execute("UPDATE job SET owner_uid = ?", (os.getuid(),))
    fill_s = time.perf_counter() - started
    daemon.start()
    try:
        loads: list[float] = []
        with sync_playwright() as driver:
            browser = _browser(driver)
            try:
                context = _sign_in(daemon, browser)
                url = _tcp_base(daemon) + "/ui/"
                for _ in range(scale.page_loads + 1):  # the first load warms the cache, and is not counted
                    page = context.new_page()
                    begun = time.perf_counter()
                    page.goto(url, wait_until="commit")
                    page.wait_for_selector(FIRST_ROW, timeout=30_000)
                    loads.append(time.perf_counter() - begun)
                    rows = page.locator(FIRST_ROW).count()
                    page.close()
                    if rows == 0:
                        raise RuntimeError("the jobs page showed no rows")
            finally:
                browser.close()
        first, _deep = figures._list_timings(daemon, scale)  # type: ignore[arg-type]
        p99 = percentile(first, 0.99)
        return [
            Figure(
                "18a",
                f"jobs page in chromium, navigation to first rows, {scale.table_jobs} jobs",
                "s",
                loads[1:],
                "< 1 s",
                statistics.median(loads[1:]) < 1.0,
                extra={"cold_first_load": round(loads[0], 6), "rows_shown": rows, "fill_table_s": round(fill_s, 3)},
            ),
            Figure(
                "18b",
                f"GET /v1/jobs?limit=50, first page, {scale.table_jobs} jobs (the route of 7a)",
                "s",
                first,
                "p99 < 20 ms",
                p99 < 0.020,
                extra={"p99": round(p99, 6), "compares_to": "7a"},
            ),
        ]
    finally:
        daemon.discard()


def _lines_for(size: int) -> tuple[int, int]:
    """The smallest N whose `lines N` output is at least `size` bytes, and that output's size."""
    total, n = 0, 0
    while total < size:
        n += 1
        total += len(str(n)) + len(TAIL) + 1
    return n, total


def _max_lines() -> int:
    """The DOM cap the shipped dashboard.js keeps (MAX_LINES)."""
    import tao_server.ui

    script = (Path(tao_server.ui.__file__).parent / "static" / "dashboard.js").read_text()
    found = re.search(r"MAX_LINES\s*=\s*(\d+)", script)
    if found is None:
        raise RuntimeError("no MAX_LINES in dashboard.js")
    return int(found.group(1))


def live_log(scale: DashboardScale) -> list[Figure]:
    """Figure 19a: `log_bytes` of lines followed to the last one in the job page; 19b: daemon RSS, `tabs` tabs following."""
    from playwright.sync_api import sync_playwright

    count, expected = _lines_for(scale.log_bytes)
    last = f"{count}{TAIL}"
    cap = _max_lines()
    daemon = _ui_daemon().start()
    pid = daemon.process.pid  # type: ignore[union-attr]
    try:
        with sync_playwright() as driver:
            browser = _browser(driver)
            try:
                context = _sign_in(daemon, browser)
                base = _tcp_base(daemon)
                warm = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "lines", "args": ["3"]})
                daemon.wait_for_status(warm["id"], ("succeeded",))  # the image and the runner are warm
                page = context.new_page()
                page.goto(f"{base}/ui/jobs/{warm['id']}")
                page.wait_for_function("t => document.getElementById('log').innerText.includes(t)", arg=f"3{TAIL}")
                page.close()
                time.sleep(1)
                idle = rss_mb(pid)
                # The output starts once every tab follows: the job waits a few seconds, then prints.
                # The task prints once every tab is open (a gate the bench opens), however long opening them takes.
                gates = Path(tempfile.mkdtemp(prefix="tao-bench-gates-"))
                script = f"while [ ! -e /gates/go ]; do sleep 0.05; done; seq 1 {count} | sed 's/$/{TAIL}/'"
                mounts = {"Mounts": [{"source": str(gates), "destination": "/gates"}]}
                body = {"task": "detectnet_v2", "subtask": "run", "args": ["sh", "-c", script], "launch_config": mounts}
                job = daemon.request("POST", "/v1/jobs", body)
                # One signed-in context per tab, as `tabs` viewers: tabs of one context share Chromium's 6
                # HTTP/1.1 connections to the daemon, and from the 7th following tab on none of them can load.
                viewers = [context] + [_sign_in(daemon, browser) for _ in range(scale.tabs - 1)]
                pages = []
                for viewer in viewers:
                    tab = viewer.new_page()
                    tab.goto(f"{base}/ui/jobs/{job['id']}", timeout=120_000)
                    pages.append(tab)
                samples: list[float] = []
                marks: dict[str, float] = {}  # when the log file got its first byte, and its last
                log_path = daemon.data_dir / "logs" / f"{job['id']}.log"
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        samples.append(rss_mb(pid))
                        size = log_path.stat().st_size if log_path.exists() else 0
                        if size > 0:
                            marks.setdefault("first", time.time())
                        if size >= expected:
                            marks.setdefault("written", time.time())
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample)
                sampler.start()
                (gates / "go").touch()
                shown: list[float] = []
                nodes: list[int] = []
                try:
                    # Each tab in turn: a tab that showed its last line while an earlier one was awaited reads
                    # late (when it is first asked), so the max, all tabs at their end, is the figure to read.
                    for tab in pages:
                        shown_at = tab.wait_for_function(SHOWN, arg=last, timeout=600_000, polling=100).json_value()
                        shown.append(shown_at / 1000 - marks["first"])
                        nodes.append(tab.evaluate("document.getElementById('log').childElementCount"))
                finally:
                    done.set()
                    sampler.join()
                finished = daemon.wait_for_status(job["id"], ("succeeded",), timeout=600)
                log_size = (daemon.data_dir / "logs" / f"{job['id']}.log").stat().st_size
                for tab in pages:
                    tab.close()
                shutil.rmtree(gates, ignore_errors=True)
            finally:
                browser.close()
        growth = max(samples) - idle
        bounded = max(nodes) <= cap
        return [
            Figure(
                "19a",
                f"job page shows the last of {log_size / 1e6:.0f} MB of lines, each of {scale.tabs} tabs, from the log's first byte",
                "s",
                shown,
                f"last line shown; DOM <= {cap} lines",
                bounded,
                extra={
                    "log_bytes": log_size,
                    "lines": count,
                    "dom_lines_max": max(nodes),
                    "dom_cap": cap,
                    "job_status": finished["status"],
                    "written_s": round(marks["written"] - marks["first"], 3),
                },
            ),
            Figure(
                "19b",
                f"daemon RSS while {scale.tabs} tabs follow a {log_size / 1e6:.0f} MB log, peak",
                "MB",
                samples,
                "peak within 20 MB of idle",
                growth <= 20,
                extra={"idle": round(idle, 1), "peak": round(max(samples), 1), "growth": round(growth, 1)},
            ),
        ]
    finally:
        daemon.discard()


def run_group(group: str, scale: DashboardScale) -> list[Figure]:
    return jobs_page(scale) if group == "18" else live_log(scale)


__all__ = ["GROUPS", "DashboardScale", "jobs_page", "live_log", "run_group"]
