"""Benchmark: `pulumi up` with Agentform's resources vs the engine alone (not a test).

    python -m tests.bench.bench_pulumi [--count 20] [--profile]

Measured in one run, with the real engine and a real host:
- the quickstart: first `pulumi up`, then an `up` with nothing to do;
- a fleet of N agents + N functions, each function with its own code (+ model API,
  environment, connection, 2N+1 deployments);
- the same number of no-op dynamic resources (engine, language host and dynamic-provider
  plumbing only), so the difference is the share spent in Agentform's provider and host
  (packaging, uploads, starting and health-checking each deployment's first worker).
  Both are created, then destroyed (untimed), in alternating rounds; medians are compared,
  since the engine's own time varies by tens of percent from one `up` to the next here.

`--profile` then makes the fleet's provider calls directly in this process (check and create,
deployments on 4 threads like the dynamic provider's gRPC server), against the same host,
under cProfile, and prints the time per call and the top entries.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentform.scripted_model import Script, ScriptedModelServer
from tests.support.engine import PulumiProject, engine_bin
from tests.support.hosts import RunningHost

REPO = Path(__file__).resolve().parents[2]
FLEET = Path(__file__).parent / "programs" / "fleet"


def timed_up(project: PulumiProject) -> float:
    started = time.perf_counter()
    project.run("up", "--yes", "--skip-preview", check=True)
    return time.perf_counter() - started


def project(
    workdir: Path, program: Path, bin_dir: Path, host: RunningHost, **config: str
) -> PulumiProject:
    made = PulumiProject(
        workdir, program, bin_dir, env={"AGENTFORM_STATE_DIR": str(host.state_dir)}
    )
    made.config("agentform:endpoint", host.url)
    for key, value in config.items():
        made.config(key, value)
    return made


def profile_providers(host: RunningHost, code: Path, count: int, top: int) -> None:
    """The fleet's provider calls, made as the engine makes them, under cProfile."""
    from agentform.resources.deployment import DeploymentProvider
    from agentform.resources.environment import EnvironmentProvider
    from agentform.resources.workloads import AgentProvider, FunctionProvider, ModelApiProvider

    os.environ["AGENTFORM_ENDPOINT"] = host.url  # what `configure` gives the engine's provider
    hidden = {"agentform_endpoint": host.url, "agentform_token": host.token}
    env = "profiled"
    EnvironmentProvider().create({"name": env, "description": "", "policies": [], **hidden})
    model = {"name": "chat", "provider": "openai-compatible", "model": "scripted"}
    workloads: list[tuple[Any, dict[str, Any]]] = [
        (ModelApiProvider(), {**model, "base_url": "http://127.0.0.1:9/v1", "kind": "models"})
    ]
    for index in range(count):
        tool = {
            "name": f"tool-{index}",
            "code": str(code / f"tool-{index}"),
            "entrypoint": "tool:main",
        }
        agent = {"name": f"agent-{index}", "model": "chat", "functions": [tool["name"]]}
        workloads += [
            (FunctionProvider(), {**tool, "kind": "functions"}),
            (AgentProvider(), {**agent, "instructions": "Use the tool.", "kind": "agents"}),
        ]
    deployments = DeploymentProvider()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with profiler:
        checked = [(p, p.check({}, {**inputs, **hidden}).inputs) for p, inputs in workloads]
    checks = time.perf_counter() - started
    started = time.perf_counter()
    with profiler:
        created = [p.create(inputs).outs for p, inputs in checked]
    creates = time.perf_counter() - started
    started = time.perf_counter()
    with profiler:
        settings = [
            deployments.check(
                {},
                {
                    **{k: outs[k] for k in ("name", "kind", "artifact")},
                    "environment": env,
                    "enabled": True,
                    **hidden,
                },
            ).inputs
            for outs in created
        ]
    deployment_checks = time.perf_counter() - started
    started = time.perf_counter()
    # Not profiled (cProfile sees one thread): mostly the host starting each first worker.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(deployments.create, settings))
    deployment_creates = time.perf_counter() - started
    n = len(workloads)
    print(f"== provider calls in-process ({n} workloads, {n} deployments), ms per call")
    print(
        f"  workload check {checks / n * 1000:6.1f}    create {creates / n * 1000:6.1f}    "
        f"deployment check {deployment_checks / n * 1000:6.1f}    "
        f"create {deployment_creates / n * 1000:6.1f} (4 threads: wall / {n})"
    )
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the provider calls")
    args = parser.parse_args()
    count = args.count
    bin_dir = engine_bin()
    model = ScriptedModelServer(
        Script.model_validate({"steps": [{"text": "ok"}], "cycle": True})
    ).start()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        code = work / "tools"
        for index in range(count):  # each function its own code, as in a real fleet
            (code / f"tool-{index}").mkdir(parents=True)
            (code / f"tool-{index}" / "tool.py").write_text(
                f'def main(x: int = 0) -> int:\n    """Add {index}."""\n    return x + {index}\n'
            )
        host = RunningHost(work / "state").start()
        try:
            url = f"{model.url}/v1"
            quickstart = project(
                work / "quickstart",
                REPO / "examples" / "quickstart",
                bin_dir,
                host,
                test_model_url=url,
            )
            first, again = timed_up(quickstart), timed_up(quickstart)
            # The fleet's environment has the same (stack) name: it must be the fleet's alone
            # for the rounds below to destroy it.
            quickstart.run("destroy", "--yes", "--skip-preview", check=True)
            fleet = project(
                work / "fleet",
                FLEET,
                bin_dir,
                host,
                count=str(count),
                mode="agentform",
                code_dir=str(code),
                per_function_code="true",
                test_model_url=url,
            )
            noop = project(work / "noop", FLEET, bin_dir, host, count=str(count), mode="noop")
            rounds: list[tuple[float, float]] = []
            for round_ in range(args.rounds):
                if round_:
                    for stack in (fleet, noop):
                        stack.run("destroy", "--yes", "--skip-preview", check=True)
                rounds.append((timed_up(fleet), timed_up(noop)))
            ours_again, baseline_again = timed_up(fleet), timed_up(noop)
            if args.profile:
                profile_providers(host, code, count, top=20)
        finally:
            host.stop()
            model.stop()
    resources = 4 + 4 * count
    print("== pulumi up, quickstart (9 resources)")
    print(f"  first up {first:6.2f} s    up with nothing to do {again:6.2f} s")
    deployments = 2 * count + 1
    fleet_size = f"{resources} resources, {deployments} deployments"
    print(f"== pulumi up, {count} agents + {count} functions ({fleet_size})")
    ours = sorted(o for o, _ in rounds)[len(rounds) // 2]
    baseline = sorted(b for _, b in rounds)[len(rounds) // 2]
    ratio = ours / baseline
    print(
        f"  agentform {ours:6.2f} s    no-op baseline {baseline:6.2f} s    ratio {ratio:.2f}x "
        f"(medians of {len(rounds)} rounds; round by round: "
        + ", ".join(f"{o:.2f}/{b:.2f} s" for o, b in rounds)
        + ")"
    )
    print(
        f"  share in Agentform's provider and host: {(ours - baseline) / ours:.0%} "
        f"({(ours - baseline) / (2 * count + 1) * 1000:.0f} ms per deployment beyond the engine)"
    )
    print(
        f"  nothing to do: agentform {ours_again:6.2f} s    no-op baseline {baseline_again:6.2f} s"
    )


if __name__ == "__main__":
    main()
