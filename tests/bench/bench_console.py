"""Benchmark of the web console (not a test: it prints figures).

    python -m tests.bench.bench_console [--loads 15]

Builds a real 20-hop trace (an agent whose scripted model calls a tool nine times, one step
asking for two calls at once: 1 agent + 1 schema fetch + 9 model calls + 9 tool calls), then,
in Debian's chromium-headless-shell driven by Playwright:
- the page weight of the trace, deployment and executions pages: bytes of every response
  the page loads (HTML, CSS, htmx), as transferred (gzip) and uncompressed;
- the trace page's time to first render: first-contentful-paint from the browser's paint
  timing, and its navigation timing (first byte, DOMContentLoaded), median of cold loads in
  fresh browser contexts (no cache).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Response, sync_playwright

from agentform.scripted_model import Script, ScriptedModelServer
from tests.console.conftest import chromium_executable
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import setup_environment

LOOKUP = """
def main(invoice: str) -> dict:
    \"\"\"Look an invoice up.\"\"\"
    return {"invoice": invoice, "paid": True}
"""


def twenty_hop_trace(host: RunningHost, model: ScriptedModelServer, workdir: Path) -> str:
    admin = host.admin()
    key = setup_environment(admin)
    deploy_model(admin, model).raise_for_status()
    deploy_function(admin, workdir, "lookup", LOOKUP)
    deploy_agent(admin, "billing", functions=("lookup",), max_steps=20).raise_for_status()
    call = {"name": "lookup", "arguments": {"invoice": "INV-1"}}
    steps: list[dict[str, Any]] = [{"tool_calls": [call, call]}]
    steps += [{"tool_calls": [call]} for _ in range(7)]
    steps.append({"text": "All nine invoices are paid."})
    model.load(steps)
    answer = ask(host.client(key), "billing", "Are my invoices paid?")
    answer.raise_for_status()
    trace_id = answer.headers["x-agentform-trace-id"]
    hops = len(admin.get(f"/v1/traces/{trace_id}").json()["executions"])
    if hops != 20:
        raise SystemExit(f"expected a 20-hop trace, got {hops} hops")
    return trace_id


def sign_in(browser: Browser, host: RunningHost) -> list[dict[str, Any]]:
    """Sign in once; return the session cookie for fresh contexts."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{host.url}/console/login")
    page.fill("#token", host.token)
    page.click("form.login button")
    page.wait_for_url(f"{host.url}/console")
    cookies = [dict(c) for c in context.cookies() if c["name"] == "agentform_console"]
    context.close()
    return cookies


def load(browser: Browser, cookies: list[dict[str, Any]], url: str) -> dict[str, float]:
    context = browser.new_context()
    context.add_cookies(cookies)  # type: ignore[arg-type]
    page = context.new_page()
    sizes: dict[str, int] = {}  # uncompressed
    sent: dict[str, int] = {}  # as transferred (the host gzips when the browser accepts it)

    def count(response: Response) -> None:
        sizes[response.url] = len(response.body())
        sent[response.url] = response.request.sizes()["responseBodySize"]

    page.on("response", count)
    page.goto(url, wait_until="load")
    # Paint timing lands a frame after load: wait for it (buffered), at most 10 s.
    timing = page.evaluate(
        """() => new Promise((resolve) => {
            const nav = performance.getEntriesByType('navigation')[0];
            const done = (fcp) => resolve({ttfb: nav.responseStart,
                dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, fcp: fcp});
            new PerformanceObserver((list) => {
                const paint = list.getEntriesByName('first-contentful-paint')[0];
                if (paint) done(paint.startTime);
            }).observe({type: 'paint', buffered: true});
            setTimeout(() => done(-1), 10000);
        })"""
    )
    context.close()
    return {
        **timing,
        "bytes": float(sum(sizes.values())),
        "sent": float(sum(sent.values())),
        "requests": float(len(sizes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = ScriptedModelServer(Script(steps=[])).start()
        host = RunningHost(workdir / "state").start()
        try:
            trace_id = twenty_hop_trace(host, model, workdir)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=chromium_executable(), args=["--no-sandbox"]
                )
                cookies = sign_in(browser, host)
                pages = {
                    "trace (20 hops)": f"{host.url}/console/traces/{trace_id}",
                    "deployment": f"{host.url}/console/deployments/development/agents/billing",
                    "executions": f"{host.url}/console/executions",
                }
                print(f"console figures, median of {args.loads} cold loads (fresh contexts)")
                for name, url in pages.items():
                    loads = [load(browser, cookies, url) for _ in range(args.loads)]

                    def median(field: str, runs: list[dict[str, float]] = loads) -> float:
                        return statistics.median(run[field] for run in runs)

                    print(
                        f"  {name:16} weight {median('sent') / 1024:5.1f} KiB transferred "
                        f"({median('bytes') / 1024:5.1f} KiB uncompressed) in "
                        f"{median('requests'):.0f} requests   first byte {median('ttfb'):5.1f} ms"
                        f"   first contentful paint {median('fcp'):6.1f} ms"
                        f"   DOMContentLoaded {median('dcl'):6.1f} ms"
                    )
                browser.close()
        finally:
            host.stop()
            model.stop()


if __name__ == "__main__":
    main()
