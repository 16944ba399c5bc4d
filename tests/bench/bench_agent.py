"""Benchmark: where the time of one agent turn with one tool call goes (not a test).

    python -m tests.bench.bench_agent [--samples N]

One request = agent -> model (asks for the tool) -> function -> model (answers): four
invocations through the host. Measured side by side in one run:
- the whole request, as the client sees it;
- the scripted model server alone (two direct HTTP calls, the same requests);
- the function alone (its handler called in-process);
- so the host's share: total - model - function, and per hop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from agentform.scripted_model import Script, ScriptedModelServer
from tests.bench.bench_host import percentile
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import setup_environment

ADD = 'def main(a: int, b: int) -> dict:\n    """Add."""\n    return {"sum": a + b}\n'
STEPS = [
    {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
    {"text": "The sum is {tool_result}."},
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=300)
    samples = parser.parse_args().samples
    model = ScriptedModelServer(Script.model_validate({"steps": STEPS, "cycle": True})).start()
    with tempfile.TemporaryDirectory() as tmp:
        host = RunningHost(Path(tmp) / "state").start()
        try:
            admin = host.admin()
            key = setup_environment(admin)
            deploy_model(admin, model).raise_for_status()
            deploy_function(admin, Path(tmp), "add", ADD)
            deploy_agent(admin, "calc", functions=("add",)).raise_for_status()
            client = host.client(key)
            for _ in range(20):  # warm every worker and the schema cache
                ask(client, "calc", "2 + 3?").raise_for_status()

            totals = []
            for _ in range(samples):
                started = time.perf_counter()
                ask(client, "calc", "2 + 3?").raise_for_status()
                totals.append((time.perf_counter() - started) * 1000)

            # The same two model requests, straight to the scripted server.
            requests = [r["body"] for r in model.requests[-2:]]
            direct = httpx.Client(base_url=model.url, timeout=30)
            model_times = []
            for _ in range(samples):
                started = time.perf_counter()
                for body in requests:
                    direct.post("/v1/chat/completions", json=body).raise_for_status()
                model_times.append((time.perf_counter() - started) * 1000)

            namespace: dict[str, object] = {}
            exec(ADD, namespace)  # the function's own code, in-process
            add = namespace["main"]
            function_times = []
            for _ in range(samples):
                started = time.perf_counter()
                add(a=2, b=3)  # type: ignore[operator]
                function_times.append((time.perf_counter() - started) * 1000)
        finally:
            host.stop()
            model.stop()

    total, in_model, in_function = (
        percentile(v, 50) for v in (totals, model_times, function_times)
    )
    overhead = total - in_model - in_function
    print(f"== one agent turn with one tool call ({samples} requests, p50)")
    print(f"  whole request (client)      {total:8.2f} ms   p99 {percentile(totals, 99):.2f} ms")
    print(f"  scripted model, 2 calls     {in_model:8.2f} ms")
    print(f"  function, in-process        {in_function:8.3f} ms")
    print(
        f"  host overhead               {overhead:8.2f} ms  ({overhead / total:.0%} of the request)"
    )
    print(f"  per invocation (4 hops)     {overhead / 4:8.2f} ms")


if __name__ == "__main__":
    main()
