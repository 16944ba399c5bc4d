"""`agentform traces`, `status` and `api-key create|list|revoke` against an `aws` stack:
lineage from the environment's DynamoDB table, deployments from Lambda, API keys, through the
test-only router."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentform.scripted_model import ScriptedModelServer
from agentform_runtime.aws_contract import table_name
from agentform_runtime.workload.aws.identity import hash_key
from tests.aws.moto_server import CREDENTIALS
from tests.aws_runtime.platforms import AwsPlatform
from tests.aws_runtime.router import REGION
from tests.aws_runtime.test_acceptance import HANDOFF_TREE, WHOAMI, _handoff, tree


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
    # An environment with no deployment yet counts in the heading too.
    ssm = aws_platform.router.client("ssm")
    record = ssm.get_parameter(Name="/agentform/environments/development")["Parameter"]
    ssm.put_parameter(Name="/agentform/environments/empty", Value=record["Value"], Type="String")
    records = ssm.get_parameters_by_path(Path="/agentform/environments")["Parameters"]
    assert len(records) > 1  # more than the one environment that has deployments
    table = _agentform(aws_platform, "status")
    assert table.returncode == 0, table.stderr
    heading = f"aws {REGION}: 4 deployment(s) in {len(records)} environment(s)"
    assert table.stdout.splitlines()[0] == heading


def test_api_key_create_on_aws(
    aws_platform: AwsPlatform, model_server: ScriptedModelServer
) -> None:
    """`agentform api-key create --platform aws`: the printed key reaches the environment's
    agents (its hash only is stored); a key of `production` is a 403 in `development`."""
    aws_platform.model(model_server)
    aws_platform.agent("whoami", code=WHOAMI)
    aws_platform.up()

    created = _agentform(aws_platform, "api-key", "create", "--environment", "development")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("afk_") and "\n" not in key
    key_id = created.stderr.split()[2]
    assert key_id.startswith("key_"), created.stderr
    answer = aws_platform.ask("whoami", key, {})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == json.dumps({"identity": f"api-key:{key_id}"})
    dynamodb = aws_platform.router.client("dynamodb")
    stored = dynamodb.scan(TableName=table_name("development"))["Items"]
    assert key not in json.dumps(stored) and hash_key(key) in json.dumps(stored)

    other = _agentform(aws_platform, "api-key", "create", "--environment", "production")
    assert other.returncode == 0, other.stderr
    refused = aws_platform.ask("whoami", other.stdout.strip(), {})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["message"] == (
        "this API key belongs to environment 'production', not 'development'"
    )

    missing = _agentform(aws_platform, "api-key", "create", "--environment", "staging")
    assert missing.returncode == 1
    assert "environment 'staging' is not on AWS" in missing.stderr

    listed = _agentform(aws_platform, "api-key", "list", "--environment", "development", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(k["id"], k["revoked"]) for k in json.loads(listed.stdout)] == [(key_id, None)]
    revoked = _agentform(aws_platform, "api-key", "revoke", key_id, "--environment", "development")
    assert revoked.returncode == 0, revoked.stderr
    gone = aws_platform.ask("whoami", key, {})
    assert gone.status_code == 401, gone.text
    assert gone.json()["error"]["message"] == "the API key is not valid or was revoked"
    relisted = _agentform(aws_platform, "api-key", "list", "--environment", "development", "--json")
    [entry] = json.loads(relisted.stdout)
    assert entry["id"] == key_id and entry["revoked"] >= entry["created"]
    again = _agentform(aws_platform, "api-key", "revoke", key_id, "--environment", "development")
    assert again.returncode == 1
    assert f"active API key '{key_id}' on environment 'development' does not exist" in (
        again.stderr
    )
