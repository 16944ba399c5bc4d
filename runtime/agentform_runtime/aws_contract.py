"""The contract between the AWS deployer (`agentform.platforms.aws`) and the workload runtime
when it runs on AWS Lambda: the names of what the deployer creates and the variables it sets
on every function. One module, imported by both sides, so neither guesses the other's names.

Per environment the deployer creates:
- one DynamoDB table, `table_name(environment)`, keys `pk` (S) and `sk` (S), holding
  execution records, token-budget counters and hashed API keys (item shapes are owned by
  `agentform_runtime.workload.aws`);
- one Secrets Manager secret, `hop_key_secret_name(environment)`, the key that signs hop
  tokens (a random string);
- per integration connection, one Secrets Manager secret, `connection_secret_name(name)`,
  holding the JSON `{"provider", "config", "secrets"}` (what the local host hands a model
  workload as AGENTFORM_CONNECTION, a function as one entry of AGENTFORM_CONNECTIONS); only
  the roles of the model deployments naming it (`connection`) and of the function deployments
  declaring it (`connections`) may read it;
- when the stack sets `agentform:jwtSecret`, one Secrets Manager secret,
  `jwt_secret_name(environment)`, whose string is the end users' HS256 key;
- the end-user JWT settings (`agentform:jwtSecret`, `agentform:jwksUrl`), in `AUTH_VAR` of
  every function (end users reach each at its function URL, as every /run path locally).

Per account and home region, made with the first environment and kept: one DynamoDB table,
`API_KEY_INDEX_TABLE` (same keys), the index of every environment's API keys (the same item
as in the environment's table), so that a key of another environment is told apart (403) from
an unknown one (401), as on the local host.

Per deployment: a function `function_name(...)`, an alias `LIVE_ALIAS`, one IAM role.

What the workload expects of them (`agentform_runtime.workload.aws`; added with it):
- the function's handler is the manifest's (`agentform_runtime.workload.handler.handle`), its
  function URL (auth type NONE: the handler authenticates) on the `live` alias;
- `CONNECTION_SECRET_VAR`'s secret holds the connection as JSON:
  `{"provider": ..., "config": {...}, "secrets": {...}}` (a `ConnectionSpec`), and so does
  each secret `CONNECTION_SECRETS_VAR` names (a function's `ctx.connections[name]`);
- `AUTH_VAR` is set on every function end users reach with JWTs (API keys need nothing);
  `jwt_secret_arn` names a secret whose string is the HS256 secret;
- an environment API key is the item `workload.aws.identity.api_key_item(...)` in the table
  and in `API_KEY_INDEX_TABLE` (only its SHA-256 is stored; `put_api_key` writes both, and
  the item that lists the key by id in the table); revoking it deletes both;
- the role allows `lambda:InvokeFunction` on exactly the alias ARNs `TARGETS_VAR` names (an
  undeclared call is refused by IAM and reported as `NotDeclared`), `dynamodb:GetItem`,
  `PutItem` and `UpdateItem` on the table (lineage, budgets, API keys; writes go through
  `TransactWriteItems`), `dynamodb:GetItem` on `API_KEY_INDEX_TABLE`, and
  `secretsmanager:GetSecretValue` on the hop key, the JWT secret
  (with JWT settings), its connection's secret (models) and its declared connections'
  secrets (functions);
- lineage records are read back with `workload.aws.lineage.trace(table, id)` (for
  `agentform traces` and `status` against `aws`; `dynamodb:Query` for the reader).
"""

from __future__ import annotations

import hashlib

from agentform_runtime.specs import DeploymentKey

PLATFORM_VAR = "AGENTFORM_PLATFORM"  # "local" (default) or "aws"
LIVE_ALIAS = "live"

# Variables the deployer sets on every function (beside AGENTFORM_ENVIRONMENT, _KIND, _NAME,
# _VERSION and _CONFIG, which the local host sets too).
# JSON {"functions/x": "<region of its live alias>", ...}, declared targets only: regions, not
# ARNs, as Lambda allows 4 KB of variables in all (the ARN is the caller's partition and
# account, that region, `function_name(...)` and LIVE_ALIAS).
TARGETS_VAR = "AGENTFORM_TARGETS"
MAX_VARIABLES_BYTES = 4096  # Lambda's limit, measured on the variables as compact JSON
TABLE_VAR = "AGENTFORM_TABLE"  # the environment's DynamoDB table
HOP_KEY_SECRET_VAR = "AGENTFORM_HOP_KEY_SECRET"  # ARN of the hop-token key secret
CONNECTION_SECRET_VAR = "AGENTFORM_CONNECTION_SECRET"  # ARN of its connection's secret, if any
# A function's declared connections (`connections=[...]`): compact JSON {"<name>": "<ARN of
# its secret>", ...}, set only when it declares any. ARNs, never values: the workload reads
# each secret once per process into `ctx.connections[name]`.
CONNECTION_SECRETS_VAR = "AGENTFORM_CONNECTION_SECRETS"
# The region of the environment's table and secrets (the stack's `agentform:region`), which a
# location policy may make differ from the function's own AWS_REGION.
HOME_REGION_VAR = "AGENTFORM_HOME_REGION"
POLICIES_VAR = "AGENTFORM_POLICIES"  # JSON list of effective PolicySpec dicts
AUTH_VAR = "AGENTFORM_AUTH"  # JSON {"jwt_secret_arn": ..., "jwks_url": ...}; agents only

_PREFIX = "agentform"
# A dot, which environment names cannot hold, so no `table_name(...)` is ever this table.
API_KEY_INDEX_TABLE = "agentform.api-keys"
_MAX_FUNCTION_NAME = 64


def function_name(key: DeploymentKey) -> str:
    """`agentform-<env>-<kind>-<name>`, shortened with a hash to Lambda's 64 characters."""
    full = f"{_PREFIX}-{key.environment}-{key.kind}-{key.name}"
    if len(full) <= _MAX_FUNCTION_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: _MAX_FUNCTION_NAME - 9]}-{digest}"


def table_name(environment: str) -> str:
    return f"{_PREFIX}-{environment}"


def hop_key_secret_name(environment: str) -> str:
    return f"{_PREFIX}/{environment}/hop-key"


def jwt_secret_name(environment: str) -> str:
    return f"{_PREFIX}/{environment}/jwt-secret"


def connection_secret_name(connection: str) -> str:
    return f"{_PREFIX}/connections/{connection}"
