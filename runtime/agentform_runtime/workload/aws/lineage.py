"""Lineage records on Lambda: one item per execution or refusal in the environment's DynamoDB
table, with the fields of the local host's record (`host/state/store.py`'s ExecutionRow), so
`agentform traces` draws the same tree from either platform.

An execution is written when it starts (with a request -> trace pointer, in one transaction)
and updated with its outcome; a refusal is written once, by whoever refused."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from agentform_runtime.specs import DeploymentKey, Execution, execution_status
from agentform_runtime.workload.aws import clients

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize
_ERROR_TEXT_MAX = 2000


def _number(value: float) -> Any:
    # DynamoDB numbers are decimals: floats go through their repr.
    return Decimal(repr(value)) if isinstance(value, float) else value


def _item(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(_number(v)) for k, v in fields.items()}


def _keys(trace_id: str, request_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"trace#{trace_id}"}, "sk": {"S": f"exec#{request_id}"}}


def _record(
    key: DeploymentKey, execution: Execution, started: float, **outcome: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": execution.request_id,
        "trace_id": execution.trace_id,
        "parent_id": execution.parent_id,
        "environment": key.environment,
        "kind": key.kind,
        "name": key.name,
        "version": None,
        "path": execution.path,
        "identity": execution.identity,
        "started": started,
        "duration_ms": None,
        "status": "running",
        "http_status": None,
        "error_class": None,
        "error": None,
        "input_tokens": 0,
        "output_tokens": 0,
        **outcome,
    }
    return {**_keys(execution.trace_id, execution.request_id), **_item(fields)}


def _write(record: dict[str, Any], execution: Execution) -> None:
    pointer = {
        "pk": {"S": f"request#{execution.request_id}"},
        "sk": {"S": "trace"},
        "trace_id": {"S": execution.trace_id},
    }
    table = clients.table()
    clients.client("dynamodb").transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": record}},
            {"Put": {"TableName": table, "Item": pointer}},
        ]
    )


def started(key: DeploymentKey, execution: Execution, version: str, at: float) -> None:
    _write(_record(key, execution, at, version=version), execution)


def refused(key: DeploymentKey, execution: Execution, status: int, code: str, message: str) -> None:
    """A refusal of a real target (403 undeclared, 429 budget, 508 loop) is a hop too."""
    record = _record(
        key,
        execution,
        time.time(),
        status="refused",
        duration_ms=0.0,
        http_status=status,
        error_class=code,
        error=message,
    )
    _write(record, execution)


def finished(
    execution: Execution,
    http_status: int,
    duration_ms: float,
    error_class: str | None,
    error: str | None,
    input_tokens: int,
    output_tokens: int,
) -> None:
    values = {
        ":status": execution_status(http_status),
        ":http_status": http_status,
        ":duration_ms": duration_ms,
        ":error_class": error_class,
        ":error": error[:_ERROR_TEXT_MAX] if error else error,
        ":input_tokens": input_tokens,
        ":output_tokens": output_tokens,
    }
    clients.client("dynamodb").update_item(
        TableName=clients.table(),
        Key=_keys(execution.trace_id, execution.request_id),
        UpdateExpression=(
            "SET #status=:status, http_status=:http_status, duration_ms=:duration_ms, "
            "error_class=:error_class, #error=:error, input_tokens=:input_tokens, "
            "output_tokens=:output_tokens"
        ),
        ExpressionAttributeNames={"#status": "status", "#error": "error"},
        ExpressionAttributeValues=_item(values),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def trace(
    table: str, trace_or_request_id: str, dynamodb: Any | None = None
) -> list[dict[str, Any]]:
    """The records of one trace (given its id, or the id of one of its requests), oldest
    first, as the local host's `GET /v1/traces/{id}` lists them."""
    dynamodb = dynamodb or clients.client("dynamodb")
    pointer = dynamodb.get_item(
        TableName=table,
        Key={"pk": {"S": f"request#{trace_or_request_id}"}, "sk": {"S": "trace"}},
        ConsistentRead=True,
    ).get("Item")
    trace_id = pointer["trace_id"]["S"] if pointer else trace_or_request_id
    records: list[dict[str, Any]] = []
    query: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": f"trace#{trace_id}"}},
        "ConsistentRead": True,
    }
    while True:
        page = dynamodb.query(**query)
        for item in page.get("Items", []):
            records.append(
                {k: _plain(_deserialize(v)) for k, v in item.items() if k not in ("pk", "sk")}
            )
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(records, key=lambda record: record["started"])
