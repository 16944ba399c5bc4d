"""`agentform traces` and `agentform status` against an `aws` stack: lineage from the
environment's DynamoDB table, deployments from Lambda, through the test-only router."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentform.scripted_model import ScriptedModelServer
from tests.aws.moto_server import CREDENTIALS
from tests.aws_runtime.platforms import AwsPlatform
from tests.aws_runtime.router import REGION
from tests.aws_runtime.test_acceptance import HANDOFF_TREE, _handoff, tree


def _agentform(platform: AwsPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agentform",
            *args,
            "--platform",
            "aws",
            "--region",
            REGION,
            "--aws-endpoint-url",
            platform.router.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **CREDENTIALS},
        check=False,
    )


def test_traces_and_status_read_an_aws_stack(
    aws_platform: AwsPlatform, model_server: ScriptedModelServer
) -> None:
    response = _handoff(aws_platform, model_server)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-agentform-request-id"]

    shown = _agentform(aws_platform, "traces", request_id, "--environment", "development", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["trace_id"] == response.headers["x-agentform-trace-id"]
    assert tree(document["executions"]) == HANDOFF_TREE
    drawn = _agentform(aws_platform, "traces", request_id, "--environment", "development")
    assert drawn.returncode == 0, drawn.stderr
    assert "agents/triage" in drawn.stdout and "functions/invoice-total" in drawn.stdout
    missing = _agentform(aws_platform, "traces", "nope", "--environment", "development")
    assert missing.returncode == 1
    assert "no request or trace 'nope' in environment 'development'" in missing.stderr
    no_environment = _agentform(aws_platform, "traces", request_id)
    assert no_environment.returncode == 1 and "needs --environment" in no_environment.stderr

    status = _agentform(aws_platform, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {f"{r['kind']}/{r['name']}": r for r in json.loads(status.stdout)}
    outputs = aws_platform.project.outputs()
    assert sorted(rows) == [
        "agents/billing",
        "agents/triage",
        "functions/invoice-total",
        "models/chat",
    ]
    for name, row in rows.items():
        assert (row["environment"], row["status"]) == ("development", "live")
        assert row["version"] == outputs[f"{name.split('/')[1]}_version"]
        assert row["url"] == outputs[f"{name.split('/')[1]}_url"]
    table = _agentform(aws_platform, "status")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == f"aws {REGION}: 4 deployment(s) in 1 environment(s)"
