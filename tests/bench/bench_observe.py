"""Benchmark of observability (not a test: it prints figures measured side by side).

    python -m tests.bench.bench_observe [--quick]

- warm p50/p99 of the same function on two hosts started alike, one exporting every hop as
  an OpenTelemetry span to a real OTLP/HTTP receiver (in its own process) and one with no
  export, requests alternating between them so both see the same machine load;
- the store's size after 100,000 requests' execution records, inserted through the store
  API, with the default retention and with a 16 MiB bound;
- a request's latency while the pruner deletes 100,000 records by age.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from agentform_runtime.host.state.retention import Pruner, Retention, wal_limit
from agentform_runtime.host.state.store import ExecutionRow, Store
from tests.bench.bench_host import TRIVIAL, percentile, summary
from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, function_artifact, setup_environment


def _receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.otlp"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _host(workdir: Path, name: str, extra: tuple[str, ...]) -> tuple[RunningHost, str, str]:
    host = RunningHost(workdir / name, extra).start()
    admin = host.admin()
    key = setup_environment(admin)
    artifact = function_artifact(workdir, "bench", TRIVIAL)
    deploy(admin, artifact, "bench", scaling={"min_instances": 1}).raise_for_status()
    return host, key, f"{host.url}/run/development/functions/bench"


def otel_on_vs_off(workdir: Path, samples: int, rounds: int) -> None:
    """Three hosts per round: one exporting, two not (the second one is a control: the
    spread between two identical hosts is the noise floor of this machine). Requests rotate
    between them; each round starts fresh hosts in a rotated order."""
    receiver, receiver_url = _receiver()
    timings: dict[str, list[float]] = {"on": [], "off": [], "control": []}
    exported = dropped = 0
    try:
        for round_ in range(rounds):
            names = ["on", "off", "control"]
            names = names[round_ % 3 :] + names[: round_ % 3]
            hosts = {}
            for name in names:
                extra = ("--otlp-endpoint", receiver_url) if name == "on" else ()
                hosts[name] = _host(workdir / f"round-{round_}", name, extra)
            try:
                clients = {
                    name: (httpx.Client(headers={"authorization": f"Bearer {key}"}), url)
                    for name, (_, key, url) in hosts.items()
                }
                per_round = samples // rounds
                for i in range(per_round + 100):
                    order = names[i % 3 :] + names[: i % 3]
                    for name in order:
                        client, url = clients[name]
                        started = time.perf_counter()
                        response = client.post(url, json={"n": i})
                        elapsed = (time.perf_counter() - started) * 1000
                        assert response.status_code == 200, response.text
                        if i >= 100:  # the first 100 warm connections and workers
                            timings[name].append(elapsed)
                on = hosts["on"][0]
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    telemetry = on.admin().get("/v1/telemetry").json()
                    if telemetry["queued"] == 0 and telemetry["exported"] >= per_round + 100:
                        break
                    time.sleep(0.2)
                exported += telemetry["exported"]
                dropped += telemetry["dropped"]
            finally:
                for host, _, _ in hosts.values():
                    host.stop()
        received = httpx.get(receiver_url + "/count").json()["spans"]
    finally:
        receiver.kill()
    p50 = {name: percentile(values, 50) for name, values in timings.items()}
    print(
        f"== warm latency, OTel export on vs off ({len(timings['on'])} requests each, "
        f"{rounds} rounds of fresh hosts, requests rotating between them)"
    )
    print(f"  export on        {summary(timings['on'])}")
    print(f"  export off       {summary(timings['off'])}")
    print(f"  off (control)    {summary(timings['control'])}")
    ratio, control = p50["on"] / p50["off"], p50["control"] / p50["off"]
    print(f"  p50 on/off       {ratio:.3f}x ({(ratio - 1) * 100:+.1f}%)")
    print(f"  p50 control/off  {control:.3f}x ({(control - 1) * 100:+.1f}%: the noise floor)")
    print(f"  spans exported {exported}, received {received}, dropped {dropped}")


def _insert(store: Store, count: int, start: float) -> None:
    for n in range(count):
        request_id = uuid.uuid4().hex
        store.start_execution(
            ExecutionRow(
                request_id=request_id,
                trace_id=uuid.uuid4().hex,
                parent_id=None,
                environment="production",
                kind="functions",
                name="lookup-invoice",
                path="/",
                identity="user-0042@example.com",
                started=start + n * 0.01,
                version="v3f9c2a7d1e5b8c40",
            )
        )
        store.finish_execution(
            request_id,
            status="ok",
            http_status=200,
            duration_ms=3.2,
            input_tokens=812,
            output_tokens=97,
        )


def store_size(workdir: Path, requests: int) -> None:
    print(f"== store size after {requests} requests (one execution record each)")
    for label, retention in (
        ("default retention (30d, 512MiB)", Retention()),
        ("--max-store-size 16MiB", Retention(max_bytes=16 * 1024 * 1024)),
    ):
        directory = workdir / f"store-{retention.max_bytes}"
        directory.mkdir()
        store = Store(directory / "state.db", wal_limit(retention.max_bytes))
        pruner = Pruner(store.path, directory / "logs", retention)
        started = time.perf_counter()
        now = time.time()
        largest = 0
        # The pruner runs between chunks, as it would every --prune-interval: 2,000 records
        # are 10 s of a host answering 200 requests a second.
        for chunk in range(0, requests, 2_000):
            _insert(store, 2_000, now + chunk * 0.01)
            largest = max(largest, pruner.store_bytes())  # the peak: just before a pass
            pruner.prune_once(now + chunk * 0.01 + 100)
        elapsed = time.perf_counter() - started
        totals = pruner.totals
        print(
            f"  {label:34s} {totals.store_bytes / 2**20:7.1f} MiB on disk "
            f"(largest before a pass {largest / 2**20:.1f} MiB), {totals.records} records kept, "
            f"{totals.deleted_by_size} pruned ({elapsed:.0f} s)"
        )
        pruner.close()
        store.close()


def latency_while_pruning(workdir: Path, records: int, samples: int) -> None:
    """Requests against a host while its pruner deletes `records` records by age."""
    state = workdir / "pruning"
    host, key, url = _host(workdir, "pruning", ())
    path = url.split("/run/", 1)[1]
    client = httpx.Client(headers={"authorization": f"Bearer {key}"})
    try:
        for _ in range(50):
            client.post(url, json={"n": 1}).raise_for_status()
        idle = []
        for _ in range(samples):
            started = time.perf_counter()
            client.post(url, json={"n": 1}).raise_for_status()
            idle.append((time.perf_counter() - started) * 1000)
    finally:
        host.stop()
    store = Store(state / "state.db")
    _insert(store, records, time.time() - 40 * 86400)  # all older than the 30-day default
    store.close()
    # The pruner's first pass starts with the host: measure requests until it has ended.
    host = RunningHost(state).start()
    during = []
    try:
        admin = host.admin()
        while admin.get("/v1/retention").json()["runs"] == 0:
            started = time.perf_counter()
            client.post(f"{host.url}/run/{path}", json={"n": 1}).raise_for_status()
            during.append((time.perf_counter() - started) * 1000)
        deleted = admin.get("/v1/retention").json()["deleted_by_age"]
    finally:
        host.stop()
    print(f"== request latency while the pruner deletes {deleted} records by age")
    print(f"  idle          {summary(idle)}")
    if during:
        print(f"  while pruning {summary(during)}   ({len(during)} requests during the pass)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument(
        "--only", choices=["otel", "store", "pruning"], help="run one of the three parts"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.only in (None, "otel"):
            otel_on_vs_off(workdir, 300 if args.quick else 3000, 3)
        if args.only in (None, "store"):
            store_size(workdir, 20_000 if args.quick else 100_000)
        if args.only in (None, "pruning"):
            latency_while_pruning(workdir, 20_000 if args.quick else 100_000, 200)


if __name__ == "__main__":
    main()
