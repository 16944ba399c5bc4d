"""Benchmark: the host's peak RSS under a hostile 300 MB worker response (not a test).

    python -m tests.bench.bench_response_rss [--megabytes 300]

A function answers a body of N MB; the host must refuse it (502) without holding it. Prints
the host process's peak RSS (VmHWM) warm, before the attack, and after it, and how long the
refused call took.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, function_artifact, setup_environment

BIG = """
def main(megabytes: int = 0) -> dict:
    return {"blob": "x" * (megabytes * 1024 * 1024)}
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=300)
    megabytes = parser.parse_args().megabytes
    with tempfile.TemporaryDirectory() as tmp:
        host = RunningHost(Path(tmp) / "state").start()
        try:
            assert host.process is not None
            admin = host.admin()
            key = setup_environment(admin)
            artifact = function_artifact(Path(tmp), "big", BIG)
            deploy(admin, artifact, "big", memory_mb=4096).raise_for_status()
            run = host.client(key, timeout=600)
            assert run.post("/run/development/functions/big", json={}).status_code == 200
            before = peak_rss_mb(host.process.pid)
            started = time.perf_counter()
            response = run.post("/run/development/functions/big", json={"megabytes": megabytes})
            took = time.perf_counter() - started
            after = peak_rss_mb(host.process.pid)
            print(f"{megabytes} MB response: HTTP {response.status_code} in {took:.1f}s")
            print(f"host peak RSS: warm {before:.0f} MB, after the attack {after:.0f} MB")
        finally:
            host.stop()


if __name__ == "__main__":
    main()
