"""Benchmark of the local host (not a test: it prints figures measured side by side).

    python -m tests.bench.bench_host [--quick] [--sandbox-compare]

- warm invocation latency through the host (POST with a JSON body, and GET) vs the same
  handler called in-process vs a bare endpoint on the same server stack (the host's own
  /health route, a GET), interleaved request by request;
- cold start latency (first request after the deployment scaled to zero);
- throughput at concurrency 1, 8 and 32;
- failed requests across blue-green switches under load.

`--sandbox-compare` instead runs two hosts side by side, one sandboxed (the default) and one
started with `--no-sandbox`, and measures on both, interleaved request by request so machine
load hits both alike: cold start p50/p95 and warm invocation p50.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.workloads import deploy, deployment, function_artifact, setup_environment

TRIVIAL = """
def main(n: int = 0) -> dict:
    return {"n": n}
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return f"p50 {percentile(values, 50):7.3f} ms   p99 {percentile(values, 99):7.3f} ms"


def in_process_latency(workdir: Path, artifact: bytes, samples: int) -> list[float]:
    """The same handler, imported and called directly with the same event shape."""
    import io
    import json
    import zipfile

    root = workdir / "in-process"
    zipfile.ZipFile(io.BytesIO(artifact)).extractall(root)
    os.environ["LAMBDA_TASK_ROOT"] = str(root)
    sys.path.insert(0, str(root))
    handler = importlib.import_module("agentform_runtime.workload.handler")
    event = {"version": "2.0", "rawPath": "/", "headers": {}, "body": json.dumps({"n": 1})}
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        handler.handle(event, None)
        timings.append((time.perf_counter() - started) * 1000)
    sys.path.remove(str(root))
    return timings


def http_latency(
    client: httpx.Client, method: str, url: str, samples: int, **kwargs: object
) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return timings


async def throughput(
    url: str, key: str | None, concurrency: int, seconds: float, method: str = "POST"
) -> tuple[float, int]:
    """Requests per second from `concurrency` keep-alive connections, each sending its next
    request when the last answer is in. A minimal HTTP/1.1 client on asyncio streams: the
    load generator shares the machine, and httpx's async pool costs more CPU per request
    than the host does, so with it the client would be what is measured at high
    concurrency."""
    parsed = httpx.URL(url)
    body = b'{"n": 1}' if method == "POST" else b""
    auth = f"authorization: Bearer {key}\r\n" if key else ""
    request = (
        f"{method} {parsed.raw_path.decode()} HTTP/1.1\r\nhost: {parsed.host}\r\n{auth}"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    done = failed = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done, failed
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            done += 1
            failed += not head.startswith(b"HTTP/1.1 200")
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - started), failed


async def switches_under_load(
    admin: httpx.Client, artifacts: list[bytes], url: str, key: str, concurrency: int
) -> tuple[int, int, int]:
    """Deploy each artifact in turn while `concurrency` clients keep sending; count failures."""
    stop = asyncio.Event()
    sent = failed = 0
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=60) as client:

        async def loop() -> None:
            nonlocal sent, failed
            while not stop.is_set():
                try:
                    response = await client.post(url, json={"n": 1})
                    failed += response.status_code != 200
                except httpx.HTTPError:
                    failed += 1
                sent += 1

        tasks = [asyncio.ensure_future(loop()) for _ in range(concurrency)]
        for artifact in artifacts:
            response = await asyncio.to_thread(deploy, admin, artifact, "bench")
            assert response.status_code == 200, response.text
        stop.set()
        await asyncio.gather(*tasks)
    return len(artifacts), sent, failed


def scaled_to_zero(admin: httpx.Client, name: str) -> bool:
    return bool(deployment(admin, name)["instances"] == [])


def compare_sandbox(workdir: Path, samples: int, cold_samples: int) -> None:
    """Cold and warm latency of a sandboxed host and a --no-sandbox one, interleaved."""
    hosts = {
        "sandboxed": RunningHost(workdir / "sandboxed"),
        "--no-sandbox": RunningHost(workdir / "plain", extra_args=("--no-sandbox",)),
    }
    try:
        clients, urls = {}, {}
        for label, host in hosts.items():
            host.start()
            admin = host.admin()
            key = setup_environment(admin)
            for name, idle_s in (("warm", 600.0), ("cold", 0.2)):
                artifact = function_artifact(workdir, name, TRIVIAL)
                scaling = {"idle_timeout_s": idle_s}
                deploy(admin, artifact, name, scaling=scaling).raise_for_status()
            clients[label] = (admin, host.client(key))
            urls[label] = f"{host.url}/run/development/functions"

        warm: dict[str, list[float]] = {label: [] for label in hosts}
        for label in hosts:  # warm up connections and workers
            http_latency(clients[label][1], "POST", f"{urls[label]}/warm", 50, json={"n": 1})
        for _ in range(samples):
            for label in hosts:
                warm[label] += http_latency(
                    clients[label][1], "POST", f"{urls[label]}/warm", 1, json={"n": 1}
                )
        cold: dict[str, list[float]] = {label: [] for label in hosts}
        for _ in range(cold_samples):
            for label in hosts:
                admin, run = clients[label]
                wait_until(partial(scaled_to_zero, admin, "cold"), timeout=30)
                cold[label] += http_latency(run, "POST", f"{urls[label]}/cold", 1, json={"n": 1})

        print(
            f"== sandboxed vs --no-sandbox ({cold_samples} cold starts, {samples} warm "
            "invocations each, interleaved)"
        )
        print(f"  {'':14s} {'cold p50':>10s} {'cold p95':>10s} {'warm p50':>10s}")
        for label in hosts:
            print(
                f"  {label:14s} {percentile(cold[label], 50):7.1f} ms "
                f"{percentile(cold[label], 95):7.1f} ms {percentile(warm[label], 50):7.3f} ms"
            )
        sandboxed, plain = "sandboxed", "--no-sandbox"
        print(
            "  sandbox adds: cold p50 "
            f"{percentile(cold[sandboxed], 50) - percentile(cold[plain], 50):+.1f} ms, "
            f"cold p95 {percentile(cold[sandboxed], 95) - percentile(cold[plain], 95):+.1f} ms, "
            f"warm p50 {percentile(warm[sandboxed], 50) - percentile(warm[plain], 50):+.3f} ms"
        )
    finally:
        for host in hosts.values():
            host.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument(
        "--sandbox-compare",
        action="store_true",
        help="only compare a sandboxed host with a --no-sandbox one (cold p50/p95, warm p50)",
    )
    args = parser.parse_args()
    samples = 200 if args.quick else 2000
    cold_samples = 8 if args.quick else 30
    seconds = 2.0 if args.quick else 5.0
    rounds = 3
    if args.sandbox_compare:
        with tempfile.TemporaryDirectory() as tmp:
            compare_sandbox(Path(tmp), samples, cold_samples)
        print(f"(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]})")
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        host = RunningHost(workdir / "state").start()
        try:
            admin = host.admin()
            key = setup_environment(admin)
            artifact = function_artifact(workdir, "bench", TRIVIAL)
            scaling = {"max_instances": 32, "idle_timeout_s": 600}
            deploy(admin, artifact, "bench", scaling=scaling).raise_for_status()
            url = f"{host.url}/run/development/functions/bench"
            run = host.client(key)

            print(f"== warm invocation latency ({samples} sequential requests each, interleaved)")
            http_latency(run, "POST", url, 50, json={"n": 1})  # warm up connections and worker
            through_host: list[float] = []
            host_get: list[float] = []
            bare: list[float] = []
            for _ in range(samples):  # request by request, so machine load hits all alike
                through_host += http_latency(run, "POST", url, 1, json={"n": 1})
                host_get += http_latency(run, "GET", url, 1)
                bare += http_latency(run, "GET", f"{host.url}/health", 1)
            in_process = in_process_latency(workdir, artifact, samples)
            print(f"  through the host, POST with a JSON body {summary(through_host)}")
            print(f"  through the host, GET                   {summary(host_get)}")
            print(f"  bare endpoint (same server stack), GET  {summary(bare)}")
            print(f"  in-process handler    {summary(in_process)}")
            overhead = percentile(through_host, 50) - percentile(in_process, 50)
            print(
                f"  host overhead vs in-process: p50 +{overhead:.3f} ms "
                f"(ratio {percentile(through_host, 50) / percentile(in_process, 50):.1f}x)"
            )
            host_p50, bare_p50 = percentile(through_host, 50), percentile(bare, 50)
            get_p50 = percentile(host_get, 50)
            print(
                f"  host vs bare endpoint: p50 ratio {host_p50 / bare_p50:.2f}x (POST), "
                f"{get_p50 / bare_p50:.2f}x (GET, the same request shape); "
                f"+{host_p50 - bare_p50:.3f} / +{get_p50 - bare_p50:.3f} ms"
            )

            print(f"== cold start ({cold_samples} first requests after scaling to zero)")
            deploy(
                admin, artifact, "bench", scaling={"max_instances": 32, "idle_timeout_s": 0.2}
            ).raise_for_status()
            cold = []
            for _ in range(cold_samples):
                wait_until(lambda: deployment(admin, "bench")["instances"] == [], timeout=30)
                started = time.perf_counter()
                run.post(url, json={"n": 1}).raise_for_status()
                cold.append((time.perf_counter() - started) * 1000)
            cold_p50, cold_p95 = percentile(cold, 50), percentile(cold, 95)
            print(f"  cold start            p50 {cold_p50:7.1f} ms   p95 {cold_p95:7.1f} ms")
            print(f"  cold / warm p50 ratio {cold_p50 / host_p50:.0f}x")

            deploy(admin, artifact, "bench", scaling=scaling).raise_for_status()
            print(
                f"== throughput ({rounds} rounds of {seconds:.0f} s at each concurrency in turn, "
                "after a 1 s warm-up; medians; max_instances 32)"
            )
            levels = (1, 8, 32)
            for concurrency in levels:  # scale out first
                asyncio.run(throughput(url, key, concurrency, 1.0))
            measured: dict[int, list[tuple[float, int, float]]] = {c: [] for c in levels}
            for _ in range(rounds):  # alternating, so a slow spell of the machine hits all
                for concurrency in levels:
                    rate, failed = asyncio.run(throughput(url, key, concurrency, seconds))
                    bare_rate, _ = asyncio.run(
                        throughput(f"{host.url}/health", None, concurrency, seconds, "GET")
                    )
                    measured[concurrency].append((rate, failed, bare_rate))
            rates = {}
            for concurrency, runs in measured.items():
                rate = percentile([r for r, _, _ in runs], 50)
                bare_rate = percentile([b for _, _, b in runs], 50)
                failed = sum(f for _, f, _ in runs)
                rates[concurrency] = rate
                print(
                    f"  concurrency {concurrency:2d}: {rate:8.0f} req/s   failed {failed}   "
                    f"(bare endpoint {bare_rate:6.0f} req/s, host/bare {rate / bare_rate:.2f})"
                )
            ratios = [m32[0] / m8[0] for m8, m32 in zip(measured[8], measured[32], strict=True)]
            print(
                f"  concurrency 32 / concurrency 8: {rates[32] / rates[8]:.2f}x "
                f"(round by round: {', '.join(f'{r:.2f}' for r in ratios)})"
            )

            print("== blue-green switches under load (concurrency 8)")
            versions = [
                function_artifact(workdir, "bench", TRIVIAL + f"\nRELEASE = {i}\n")
                for i in range(3)
            ]
            switches, sent, failed = asyncio.run(switches_under_load(admin, versions, url, key, 8))
            print(f"  {switches} switches, {sent} requests, {failed} failed")
        finally:
            host.stop()
    print(f"(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
