"""Benchmark: `agentform promote dev prod` wall time, split into the engine's share (preview +
update of prod), the other Pulumi CLI calls (stack selection, state export, config, history)
and ours (bundle, artifact checks, plan). Not a test.

    python -m tests.bench.bench_promote [--count 20]

Two projects, each with stacks dev and prod on one file backend and one real host:
`examples/promotion` (4 workloads) and the fleet program (N agents + N functions + a model
API, 2N+1 deployments). dev is deployed, then promoted to prod (first promotion: prod is
created), then promoted again after a dev code change (prod updates blue-green).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from agentform.promotion import Promotion
from agentform.scripted_model import Script, ScriptedModelServer
from tests.support.engine import PulumiProject, engine_bin
from tests.support.hosts import RunningHost

REPO = Path(__file__).resolve().parents[2]
FLEET = Path(__file__).parent / "programs" / "fleet"
TOOL = 'def main(n: int = 1) -> dict:\n    return {"n": n, "tag": "%s"}\n'


def promote(workdir: Path) -> dict[str, float]:
    promotion = Promotion(
        work_dir=str(workdir), destination="prod", origin="dev", say=lambda _: None
    )
    promotion.prepare()
    promotion.preview()
    promotion.up(on_output=lambda _: None)
    return promotion.timings.summary()


def two_stacks(
    work: Path, name: str, program: Path, project: str, host: RunningHost, **config: str
) -> PulumiProject:
    made = PulumiProject(
        work / name,
        program,
        engine_bin(),
        env={"AGENTFORM_STATE_DIR": str(host.state_dir)},
        stack="dev",
        project=project,
    )
    made.run("stack", "init", "prod", check=True)
    for stack in ("dev", "prod"):
        made.run("config", "set", "agentform:endpoint", host.url, "--stack", stack, check=True)
        for key, value in config.items():
            made.run("config", "set", key, value, "--stack", stack, check=True)
    return made


def measure(label: str, made: PulumiProject, change: Path) -> None:
    os.environ.update(made.env)
    made.run("up", "--yes", "--skip-preview", "--stack", "dev", check=True)
    first = promote(made.workdir)
    change.write_text(change.read_text() + "\n# changed\n")
    made.run("up", "--yes", "--skip-preview", "--stack", "dev", check=True)
    again = promote(made.workdir)
    for what, figures in (("first promotion (prod created)", first), ("update", again)):
        print(
            f"{label}, {what}: total {figures['total_s']:.2f} s = engine {figures['engine_s']:.2f}"
            f" s + other pulumi CLI {figures['pulumi_cli_s']:.2f} s + agentform "
            f"{figures['agentform_s']:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        host = RunningHost(work / "host").start()
        model = ScriptedModelServer(Script(steps=[])).start()
        try:
            example = work / "example-program"
            shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("Pulumi*.yaml"))
            made = two_stacks(work, "example", example, "agentform-promotion", host)
            measure("example (4 workloads)", made, example / "tools" / "orders.py")
            code = work / "fleet-code"
            code.mkdir()
            (code / "tool.py").write_text(TOOL % "v1")
            made = two_stacks(
                work,
                "fleet",
                FLEET,
                "agentform-fleet",
                host,
                count=str(args.count),
                mode="agentform",
                code_dir=str(code),
                test_model_url=f"{model.url}/v1",
            )
            measure(f"fleet ({args.count} agents + {args.count} functions)", made, code / "tool.py")
        finally:
            model.stop()
            host.stop()


EXAMPLE = REPO / "examples" / "promotion"

if __name__ == "__main__":
    main()
