"""Benchmark: one artifact on the local host and under AWS's runtime emulator, side by side
(not a test: it prints figures).

    python -m tests.bench.bench_rie [--quick]

The same zip (a trivial function) is deployed on the local host and, through the test-only
Lambda router, as a Lambda function in moto run by `aws-lambda-rie` + `awslambdaric`. For each:
warm invocation latency (sequential requests on a kept-warm instance) and cold start latency
(the first request after the instance was reclaimed). On `aws` each request also does what the
host does around an invocation, with AWS's services in moto: the API key lookup, the lineage
record written at start and updated at the end; moto answers each call in tens of ms, so
the emulator alone (the readiness probe, no AWS calls) is measured too. Also: the size of
the deployed zip.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

from agentform.packaging import build_artifact
from agentform.platforms.aws import layer
from agentform_runtime.specs import HEALTH_PATH, Manifest, WorkloadKind
from tests.aws_runtime.deployer import AwsEnvironment
from tests.aws_runtime.router import LambdaRouter
from tests.bench.bench_host import TRIVIAL, percentile
from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.workloads import deploy, deployment, function_artifact, setup_environment


def timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    client.post(url, json={"n": 1}).raise_for_status()
    return (time.perf_counter() - started) * 1000


def local_figures(workdir: Path, artifact: bytes, warm: int, cold: int) -> tuple[float, float]:
    host = RunningHost(workdir / "state").start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy(admin, artifact, "bench", scaling={"idle_timeout_s": 600}).raise_for_status()
        url = f"{host.url}/run/development/functions/bench"
        client = host.client(key)
        for _ in range(20):
            timed(client, url)
        warm_ms = [timed(client, url) for _ in range(warm)]
        deploy(admin, artifact, "bench", scaling={"idle_timeout_s": 0.2}).raise_for_status()
        cold_ms = []
        for _ in range(cold):
            wait_until(lambda: deployment(admin, "bench")["instances"] == [], timeout=30)
            cold_ms.append(timed(client, url))
        return percentile(warm_ms, 50), percentile(cold_ms, 50)
    finally:
        host.stop()


def _direct(router: LambdaRouter, name: str) -> float:
    """The emulator alone: the version's zip under aws-lambda-rie + awslambdaric, answering
    the readiness probe (no AWS service calls, no router lookups)."""
    target = router._resolve(name, "live")
    event = json.dumps({"version": "2.0", "rawPath": HEALTH_PATH, "headers": {}, "body": ""})
    started = time.perf_counter()
    router.run(target, event.encode())
    return (time.perf_counter() - started) * 1000


def rie_figures(
    workdir: Path, artifact: bytes, warm: int, cold: int
) -> tuple[float, float, float, float]:
    router = LambdaRouter(workdir).start()
    try:
        environment = AwsEnvironment(router)
        key = environment.api_key()
        manifest = Manifest(kind=WorkloadKind.FUNCTIONS, name="bench", entrypoint="tool:main")
        name = environment.deploy(manifest, artifact)
        url = f"{router.url}/lambda-url/{name}/"
        client = httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=120)
        cold_ms = []
        for _ in range(cold):
            router.retire_idle()
            cold_ms.append(timed(client, url))
        for _ in range(20):
            timed(client, url)
        warm_ms = [timed(client, url) for _ in range(warm)]
        direct_warm = [_direct(router, name) for _ in range(warm)]
        direct_cold = []
        for _ in range(cold):
            router.retire_idle()
            direct_cold.append(_direct(router, name))
        return (
            percentile(warm_ms, 50),
            percentile(cold_ms, 50),
            percentile(direct_warm, 50),
            percentile(direct_cold, 50),
        )
    finally:
        router.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    warm, cold = (30, 3) if args.quick else (100, 8)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        artifact = function_artifact(workdir, "bench", TRIVIAL)
        agent = build_artifact(Manifest(kind=WorkloadKind.AGENTS, name="a", models=["chat"]))
        unzipped = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(artifact)).infolist())
        print("== the deployed zip (user code + the workload runtime + agentform.json)")
        print(
            f"  function zip {len(artifact) / 1024:7.1f} KiB ({unzipped / 1024:.1f} KiB unzipped)"
        )
        print(f"  agent zip    {len(agent) / 1024:7.1f} KiB")
        runtime_layer = layer.build_layer("x86_64")
        layer_unzipped = sum(
            i.file_size for i in zipfile.ZipFile(io.BytesIO(runtime_layer)).infolist()
        )
        print(
            f"  runtime layer {len(runtime_layer) / 1024 / 1024:6.1f} MiB "
            f"({layer_unzipped / 1024 / 1024:.1f} MiB unzipped; x86_64, once per region)"
        )
        (workdir / "rie").mkdir()
        local_warm, local_cold = local_figures(workdir / "local", artifact, warm, cold)
        rie_warm, rie_cold, direct_warm, direct_cold = rie_figures(
            workdir / "rie", artifact, warm, cold
        )
        print(f"== the same zip: local host vs aws-lambda-rie ({warm} warm, {cold} cold each)")
        print(f"  {'':24}{'warm p50':>12}{'cold p50':>12}{'cold/warm':>11}")
        for label, warm_p50, cold_p50 in (
            ("local host", local_warm, local_cold),
            ("rie via function URL", rie_warm, rie_cold),
            ("rie alone (probe)", direct_warm, direct_cold),
        ):
            print(f"  {label:24}{warm_p50:9.1f} ms{cold_p50:9.1f} ms{cold_p50 / warm_p50:10.0f}x")
        print(
            f"  rie via function URL / local: warm {rie_warm / local_warm:.1f}x, "
            f"cold {rie_cold / local_cold:.1f}x (the URL path's AWS calls go to moto)"
        )


if __name__ == "__main__":
    main()
