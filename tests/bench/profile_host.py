"""Profile the host on the warm invocation path (not a test): where its time goes.

    python -m tests.bench.profile_host [--requests 3000]

Runs the host under cProfile, sends sequential warm requests to a trivial function, stops
the host cleanly and prints the top entries by internal time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import sys
import tempfile
from pathlib import Path

from tests.bench.bench_host import TRIVIAL
from tests.support.hosts import RunningHost
from tests.support.workloads import deploy, function_artifact, setup_environment


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        profile = work / "host.prof"
        os.environ["AGENTFORM_PROFILE_TO"] = str(profile)
        host = RunningHost(work / "state", module="tests.bench.profile_host").start()
        try:
            admin = host.admin()
            key = setup_environment(admin)
            deploy(admin, function_artifact(work, "bench", TRIVIAL), "bench").raise_for_status()
            run = host.client(key)
            for _ in range(args.requests):
                run.post("/run/development/functions/bench", json={"n": 1}).raise_for_status()
        finally:
            host.stop()
        stats = pstats.Stats(str(profile))
        print(f"== host profile over {args.requests} warm requests (and start-up)")
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


def serve_profiled() -> None:
    """`python -m tests.bench.profile_host serve ...`: the host, profiled until it stops
    (uvicorn re-raises the stopping signal, so the profile is written on the way out)."""
    from agentform.cli import main as cli

    # uvicorn hands the stopping signal back to the handler it found: make that an exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        cli()
    finally:
        profiler.disable()
        profiler.dump_stats(os.environ["AGENTFORM_PROFILE_TO"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve_profiled()
    else:
        main()
