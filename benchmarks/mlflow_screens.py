"""Screenshots of the MLflow UI over the embedded store: what a researcher sees after a sweep.

Starts ``mlflow ui`` on 127.0.0.1 (a free port) against a copy of the SQLite store (default: the project's
``outputs/mlflow/mlflow.db``; the store itself is only read), finds the latest sweep's parent run (tag
``sweep=true``) of the experiment and its nested runs, and takes headless Chromium screenshots of:

1. ``runs_table.png``: the experiment's runs table with the sweep's parent run expanded to its nested runs;
2. ``compare.png``: MLflow's compare view of one nested run per variant (params, metrics side by side);
3. ``epoch_chart.png``: the per-epoch ``val/map50_95`` chart of those runs (MLflow's metric page);
4. ``charts.png``: the experiment's chart view (every logged metric, runs coloured).

Chromium runs headless and is driven over its DevTools protocol (``aiohttp``'s websocket client): each
page is loaded, waited for until it shows its runs, the assistant side panel is closed and, in the runs
table, the parent's expander is clicked. Next to each PNG, ``<name>.dom.html`` is the page's DOM at the
capture: what the page really showed (run names, values), for checks without looking at the image; ``pages.json`` lists
the pages and whether each showed what it waited for (exit 1 when one did not). The server and the
browser are stopped at the end. Nothing leaves 127.0.0.1.

Usage (needs Chromium: ``apt-get install chromium``; see docs/mlflow.md)::

    .venv/bin/python benchmarks/mlflow_screens.py                          # outputs/mlflow/screens/
    .venv/bin/python benchmarks/mlflow_screens.py --db /tmp/x/mlflow.db --out /tmp/screens --wait 300
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
METRIC = "val/map50_95"


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH (None: none installed)."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(db: Path, port: int, log: Path) -> subprocess.Popen:
    """``mlflow ui`` of the venv on 127.0.0.1:``port`` over ``db`` (its own process group; log in ``log``)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    cmd = [str(mlflow), "ui", "--backend-store-uri", f"sqlite:///{db.resolve()}", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow ui exited with {proc.returncode} before answering; see its log")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=3):  # noqa: S310 - our loopback server
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"mlflow ui did not answer {base}/health within {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server we started (its process group: mlflow ui runs its workers as children)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def sweep_runs(db: Path, experiment: str) -> tuple[str, dict, list]:
    """``(experiment id, parent run, nested runs)`` of the latest sweep in the store."""
    import mlflow

    c = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db.resolve()}")
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"{db}: no experiment '{experiment}'; run a sweep first (alignrank sweep / make repro)")
    parents = c.search_runs([exp.experiment_id], "tags.sweep = 'true'", order_by=["attributes.start_time DESC"],
                            max_results=1)
    if not parents:
        raise SystemExit(f"{db}: no sweep parent run in '{experiment}'; run a sweep first")
    parent = parents[0]
    children = c.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                             order_by=["attributes.start_time ASC"])
    return exp.experiment_id, parent, children


def copy_store(db: Path, dst: Path) -> Path:
    """A consistent copy of ``db`` (SQLite backup) for the server: the store itself is only read. Artifacts stay
    where the runs recorded them."""
    import sqlite3

    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    src, out = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True), sqlite3.connect(dst)
    with out:
        src.backup(out)
    src.close()
    out.close()
    return dst


def urls(base: str, exp_id: str, children: list) -> dict[str, str]:
    """The pages to capture (MLflow's hash routes)."""
    first = {}
    for r in children:  # one nested run per variant (its first seed) for the compare view and the chart
        first.setdefault(r.data.tags.get("variant", r.info.run_id), r.info.run_id)
    ids, exps = json.dumps(list(first.values())), json.dumps([exp_id])
    q = urllib.parse.quote
    chart = (f"?runs={q(ids)}&metric={q(json.dumps(METRIC))}&experiments={q(exps)}"
             f"&plot_metric_keys={q(json.dumps([METRIC]))}&plot_layout={q('{}')}&x_axis=step&y_axis_scale=linear"
             f"&line_smoothness=1&show_point=true&deselected_curves={q('[]')}&last_linear_y_axis_range={q('[]')}")
    return {
        "runs_table": f"{base}/#/experiments/{exp_id}/runs?compareRunsMode=TABLE",
        "compare": f"{base}/#/compare-runs?runs={q(ids)}&experiments={q(exps)}",
        "epoch_chart": f"{base}/#/metric/{q(METRIC, safe='')}{chart}",
        "charts": f"{base}/#/experiments/{exp_id}/runs?compareRunsMode=CHART",
    }


class Page:
    """One headless Chromium tab driven over the DevTools protocol (``aiohttp``'s websocket client)."""

    def __init__(self, ws) -> None:
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:  # events arrive in between: skip them
            msg = await self.ws.receive_json()
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expr: str):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    async def wait_text(self, texts: list[str], timeout: float) -> bool:
        """Wait until the page's text (chart legends included) has every one of ``texts`` (False on timeout)."""
        cond = " && ".join(f"document.body && document.body.textContent.includes({json.dumps(t)})" for t in texts)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if await self.js(cond or "true"):
                return True
            await asyncio.sleep(1)
        return False


CLOSE_ASSISTANT = "document.querySelector('button[data-component-id=\"mlflow.assistant.chat_panel.close\"]')?.click()"
EXPAND_FIRST = "document.querySelector('button[data-component-id*=\"runnamecellrenderer\"]')?.click()"


async def _capture_all(browser: str, shots: list[dict], out: Path, *, timeout: float, size=(1600, 1000)) -> None:
    import aiohttp

    port = free_port()
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--no-first-run", "--disable-extensions", "--disable-background-networking",
                             "--disable-component-update", f"--user-data-dir={out / '.chromium'}",
                             f"--remote-debugging-port={port}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        async with aiohttp.ClientSession() as http:
            targets = []
            for _ in range(120):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                        targets = [t for t in await r.json() if t.get("type") == "page"]
                    if targets:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)
            if not targets:
                raise SystemExit("headless Chromium did not open its DevTools port")
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                                deviceScaleFactor=1, mobile=False)
                for shot in shots:
                    await page.call("Page.navigate", url=shot["url"])
                    shown = await page.wait_text(shot["wait_for"], timeout)
                    await page.js(CLOSE_ASSISTANT)
                    for action, then in shot.get("actions", ()):
                        await page.js(action)
                        shown = await page.wait_text(then, timeout) and shown
                    await asyncio.sleep(3)  # charts animate in
                    png = await page.call("Page.captureScreenshot", format="png")
                    (out / f"{shot['name']}.png").write_bytes(base64.b64decode(png["data"]))
                    (out / f"{shot['name']}.dom.html").write_text(await page.js("document.documentElement.outerHTML"))
                    shot["complete"] = shown
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def shots(pages: dict[str, str], parent: str, children: list[str]) -> list[dict]:
    """What to capture: each page, the texts it must show, and the clicks before the capture."""
    one = list({c.split("-s")[0]: c for c in reversed(children)}.values())[::-1]  # first run of each variant
    legends = [f"{c} ({METRIC})" for c in one]
    return [
        {"name": "runs_table", "url": pages["runs_table"], "wait_for": [parent],
         "actions": [(EXPAND_FIRST, children)]},  # expand the sweep's parent: its nested runs
        {"name": "compare", "url": pages["compare"], "wait_for": one},
        {"name": "epoch_chart", "url": pages["epoch_chart"], "wait_for": legends},
        {"name": "charts", "url": pages["charts"], "wait_for": [f"{children[-1]} ({METRIC})"]},  # newest: shown
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, default=ROOT / "outputs" / "mlflow" / "mlflow.db", help="SQLite store")
    ap.add_argument("--experiment", default="alignrank", help="MLflow experiment (mlflow.experiment)")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "mlflow" / "screens", help="output folder")
    ap.add_argument("--wait", type=float, default=120.0, help="most seconds a page may take to show its runs")
    a = ap.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found (apt-get install chromium); nothing captured", file=sys.stderr)
        return 2
    if not a.db.is_file():
        print(f"{a.db}: no MLflow store; run a sweep first (alignrank sweep / make repro)", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    exp_id, parent, children = sweep_runs(a.db, a.experiment)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    store = copy_store(a.db, a.out / ".store" / "mlflow.db")
    proc = start_ui(store, port, a.out / "mlflow_ui.log")
    try:
        wait_healthy(base, proc)
        pages = urls(base, exp_id, children)
        todo = shots(pages, parent.info.run_name, [r.info.run_name for r in children])
        asyncio.run(_capture_all(browser, todo, a.out, timeout=a.wait))
        for shot in todo:
            print(f"{a.out / (shot['name'] + '.png')}  {shot['url']}"
                  + ("" if shot["complete"] else f"  (incomplete: {shot['wait_for']} not shown in {a.wait:.0f}s)"))
    finally:
        stop(proc)
        shutil.rmtree(a.out / ".chromium", ignore_errors=True)
        shutil.rmtree(a.out / ".store", ignore_errors=True)
    (a.out / "pages.json").write_text(json.dumps({
        "parent_run": parent.info.run_name, "parent_run_id": parent.info.run_id,
        "nested_runs": [r.info.run_name for r in children],
        "pages": {t["name"]: {"url": t["url"], "complete": t["complete"]} for t in todo}}, indent=2))
    return 0 if all(t["complete"] for t in todo) else 1


if __name__ == "__main__":
    sys.exit(main())
