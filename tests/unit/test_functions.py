"""Argument validation of user functions (in-process: the same class the handler uses)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentform_runtime.workload.context import Context
from agentform_runtime.workload.functions import BadArguments, Function

CONTEXT = Context(
    request_id="r",
    trace_id="t",
    traceparent="",
    identity="alice",
    environment="dev",
    deployment="f",
    version="v1",
)


class Point(BaseModel):
    x: int
    y: int


def distance(origin: Point, ctx: Context) -> dict[str, object]:
    """Distance from the origin (annotations are strings here: __future__ annotations)."""
    return {"manhattan": abs(origin.x) + abs(origin.y), "user": ctx.identity}


def test_string_annotations_and_models_are_resolved() -> None:
    function = Function(distance)
    assert function.context_param == "ctx"
    assert function.call({"origin": {"x": 3, "y": -4}}, CONTEXT) == {
        "manhattan": 7,
        "user": "alice",
    }
    assert "origin" in function.schema["properties"] and "ctx" not in function.schema["properties"]
    with pytest.raises(BadArguments, match=r"^origin\.y: Field required"):
        function.call({"origin": {"x": 3}}, CONTEXT)


def lookup(**kwargs: object) -> dict[str, object]:
    """Free-form arguments, described by an explicit schema."""
    return dict(kwargs)


def test_an_explicit_schema_is_what_validates() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
        "additionalProperties": False,
    }
    function = Function(lookup, schema)
    assert function.schema == schema
    assert function.call({"city": "Oslo"}, CONTEXT) == {"city": "Oslo"}
    with pytest.raises(BadArguments, match="days: 0 is less than the minimum of 1"):
        function.call({"city": "Oslo", "days": 0}, CONTEXT)
    with pytest.raises(BadArguments, match="'city' is a required property"):
        function.call({}, CONTEXT)
