"""Benchmark: where the time of one agent turn with one tool call goes (not a test).

    python -m tests.bench.bench_agent [--samples N]

One request = agent -> model (asks for the tool) -> function -> model (answers): four
invocations through the host. Measured side by side in one run:
- the whole request, as the client sees it;
- the same turn without the host: the agent's own loop (`run_agent`, the code its workers
  run) in this process, calling the scripted model server directly over HTTP and the function
  in-process; the host's share is what the whole request takes beyond that;
- the scripted model server alone (two direct HTTP calls, the same requests) and the function
  alone, so the share of everything but the model and the function is printed too (the
  agent loop, the model API's upstream call and the host together);
- the CPU time each process spends per turn (from /proc, over the timed requests): the host,
  each deployment's workers, and this process (the client and the scripted model server).
  A turn is one chain of hops, so its time is close to the sum of these.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import psutil

from agentform.scripted_model import Script, ScriptedModelServer
from agentform_runtime.workload.agent_loop import AgentSpec, run_agent
from agentform_runtime.workload.host_client import HostClient
from tests.bench.bench_host import percentile
from tests.support.agents import ask, deploy_agent, deploy_function, deploy_model
from tests.support.hosts import RunningHost
from tests.support.workloads import deployment, setup_environment

ADD = 'def main(a: int, b: int) -> dict:\n    """Add."""\n    return {"sum": a + b}\n'
STEPS = [
    {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
    {"text": "The sum is {tool_result}."},
]


class WithoutHost:
    """What the agent loop calls through the host, called directly: the scripted model server
    over HTTP, the function in-process."""

    def __init__(self, model_url: str, function: Callable[..., Any]) -> None:
        self.http = httpx.Client(base_url=model_url, timeout=30)
        self.run = function

    def chat(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/v1/chat/completions", json={**request, "model": "scripted-1"})
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    def function(self, name: str, arguments: dict[str, Any]) -> Any:
        return self.run(**arguments)

    def function_schema(self, name: str) -> dict[str, Any]:
        return {
            "description": "Add.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of `pids` (threads included; children not)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def process_tree(root: int) -> list[int]:
    """`root` and every process below it."""
    process = psutil.Process(root)
    return [root, *(child.pid for child in process.children(recursive=True))]


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

            assert host.process is not None
            processes = {"host": [host.process.pid]}
            for name, kind in (("calc", "agents"), ("chat", "models"), ("add", "functions")):
                instances = deployment(admin, name, kind=kind)["instances"]
                processes[f"{kind} worker"] = [
                    pid for i in instances for pid in process_tree(int(i["pid"]))
                ]
            cpu_before = {name: cpu_seconds(pids) for name, pids in processes.items()}
            own_before = sum(os.times()[:2])
            totals = []
            for _ in range(samples):
                started = time.perf_counter()
                ask(client, "calc", "2 + 3?").raise_for_status()
                totals.append((time.perf_counter() - started) * 1000)
            cpu_per_turn = {
                name: (cpu_seconds(pids) - cpu_before[name]) / samples * 1000
                for name, pids in processes.items()
            }
            cpu_per_turn["this process"] = (sum(os.times()[:2]) - own_before) / samples * 1000

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
            add = cast(Callable[..., Any], namespace["main"])
            direct_host = cast(HostClient, WithoutHost(model.url, add))
            without_host = []
            for _ in range(samples):
                started = time.perf_counter()
                result = run_agent(
                    direct_host, "calc", AgentSpec(), "chat", ["add"], [], {"inputs": "2 + 3?"}
                )
                without_host.append((time.perf_counter() - started) * 1000)
            assert result.output == 'The sum is {"sum": 5}.', result.output
            function_times = []
            for _ in range(samples):
                started = time.perf_counter()
                add(a=2, b=3)
                function_times.append((time.perf_counter() - started) * 1000)
        finally:
            host.stop()
            model.stop()

    total, alone, in_model, in_function = (
        percentile(v, 50) for v in (totals, without_host, model_times, function_times)
    )
    in_host = total - alone
    rest = total - in_model - in_function
    print(f"== one agent turn with one tool call ({samples} requests, p50)")
    print(f"  whole request (client)      {total:8.2f} ms   p99 {percentile(totals, 99):.2f} ms")
    print(f"  the same turn without host  {alone:8.2f} ms   (agent loop in-process)")
    print(f"  scripted model, 2 calls     {in_model:8.2f} ms")
    print(f"  function, in-process        {in_function:8.3f} ms")
    print(
        f"  host overhead               {in_host:8.2f} ms  ({in_host / total:.0%} of the request)"
    )
    print(f"  per invocation (4 hops)     {in_host / 4:8.2f} ms")
    print(
        f"  all but model and function  {rest:8.2f} ms  ({rest / total:.0%} of the request: "
        "host, agent loop, model API's upstream call)"
    )
    print(f"== CPU per turn, by process (mean over the {samples} requests)")
    for name, ms in cpu_per_turn.items():
        print(f"  {name:28}{ms:8.2f} ms")
    print(f"  {'all':28}{sum(cpu_per_turn.values()):8.2f} ms")


if __name__ == "__main__":
    main()
