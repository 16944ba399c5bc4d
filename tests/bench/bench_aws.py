"""Benchmark: `pulumi up` on `agentform:platform aws` against moto (not a test).

    python -m tests.bench.bench_aws [--count 20]

Measured in one run, with the real engine and moto's server mode in this process:
- the quickstart: first `pulumi up`, then an `up` with nothing to do;
- a fleet of N agents + N functions (+ model API, environment, connection, 2N+1 deployments);
- the same number of no-op dynamic resources (the engine alone), so the difference is the
  share spent in Agentform's provider and in the AWS calls it makes. moto answers those
  calls; the time moto spends answering them is summed and printed apart (it shares the
  machine's cores with the provider, so it is an upper bound of what AWS would cost here).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from moto.moto_server import werkzeug_app

from tests.aws.moto_server import CREDENTIALS, REGION, Moto
from tests.support.engine import PulumiProject, engine_bin

REPO = Path(__file__).resolve().parents[2]
FLEET = Path(__file__).parent / "programs" / "fleet"


class MotoClock:
    """The number of requests moto answered and the time it spent answering them."""

    def __init__(self) -> None:
        self.requests = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def install(self) -> None:
        app = werkzeug_app.DomainDispatcherApplication
        original = app.__call__
        clock = self

        def timed(self: Any, environ: Any, start_response: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(self, environ, start_response)
            finally:
                with clock._lock:
                    clock.requests += 1
                    clock.seconds += time.perf_counter() - started

        app.__call__ = timed  # type: ignore[method-assign]

    def read(self) -> tuple[int, float]:
        with self._lock:
            return self.requests, self.seconds


def timed_up(project: PulumiProject, clock: MotoClock) -> tuple[float, int, float]:
    requests, seconds = clock.read()
    started = time.perf_counter()
    project.run("up", "--yes", "--skip-preview", check=True)
    elapsed = time.perf_counter() - started
    after_requests, after_seconds = clock.read()
    return elapsed, after_requests - requests, after_seconds - seconds


def warm_up(moto: Moto) -> None:
    """moto builds each service's backend on its first request (SSM loads AWS's public
    parameters, for seconds): done before measuring, as a real AWS has it done."""
    moto.client("sts").get_caller_identity()
    moto.client("ssm").describe_parameters()
    moto.client("iam").list_roles()
    moto.client("lambda").list_functions()
    moto.client("dynamodb").list_tables()
    moto.client("secretsmanager").list_secrets()
    moto.client("s3").list_buckets()
    moto.client("lambda", "eu-central-1").list_functions()


def aws_project(
    workdir: Path, program: Path, bin_dir: Path, moto: Moto, **config: str
) -> PulumiProject:
    made = PulumiProject(workdir, program, bin_dir, env=dict(CREDENTIALS))
    for key, value in {
        "agentform:platform": "aws",
        "agentform:region": REGION,
        "agentform:awsEndpointUrl": moto.url,
        "agentform:awsReadiness": "state",
        **config,
    }.items():
        made.config(key, value)
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    count = args.count
    bin_dir = engine_bin()
    clock = MotoClock()
    clock.install()
    moto = Moto.start()
    started = time.perf_counter()
    warm_up(moto)
    warm = time.perf_counter() - started
    model_url = "http://127.0.0.1:9/v1"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            code = work / "tool"
            code.mkdir()
            (code / "tool.py").write_text(
                'def main(x: int = 0) -> int:\n    """Echo."""\n    return x\n'
            )
            quickstart = aws_project(
                work / "quickstart",
                REPO / "examples" / "quickstart",
                bin_dir,
                moto,
                test_model_url=model_url,
            )
            first, again = timed_up(quickstart, clock), timed_up(quickstart, clock)
            fleet = aws_project(
                work / "fleet",
                FLEET,
                bin_dir,
                moto,
                count=str(count),
                mode="agentform",
                code_dir=str(code),
                test_model_url=model_url,
            )
            noop = aws_project(work / "noop", FLEET, bin_dir, moto, count=str(count), mode="noop")
            ours, baseline = timed_up(fleet, clock), timed_up(noop, clock)
            ours_again = timed_up(fleet, clock)
    finally:
        moto.stop()
    print(f"== moto's own start-up of its services (not measured below): {warm:.2f} s")
    print("== pulumi up on AWS (moto), quickstart (9 resources)")
    print(
        f"  first up {first[0]:6.2f} s ({first[1]} AWS calls, moto {first[2]:5.2f} s)    "
        f"nothing to do {again[0]:6.2f} s ({again[1]} AWS calls)"
    )
    resources = 4 + 4 * count
    deployments = 2 * count + 1
    print(
        f"== pulumi up on AWS (moto), {count} agents + {count} functions "
        f"({resources} resources, {deployments} deployments)"
    )
    total, calls, in_moto = ours
    print(
        f"  agentform {total:6.2f} s    no-op baseline {baseline[0]:6.2f} s    "
        f"ratio {total / baseline[0]:.2f}x"
    )
    beyond = total - baseline[0]
    print(
        f"  share in Agentform's provider and the AWS calls: {beyond / total:.0%} "
        f"({beyond / deployments * 1000:.0f} ms per deployment beyond the engine); "
        f"{calls} AWS calls, moto busy {in_moto:.2f} s summed over its threads"
    )
    print(f"  nothing to do: {ours_again[0]:6.2f} s ({ours_again[1]} AWS calls)")


if __name__ == "__main__":
    main()
