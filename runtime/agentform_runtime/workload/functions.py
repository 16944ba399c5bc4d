"""User functions: `module:function`, arguments validated before the code runs, against the
JSON schema given explicitly or the one derived from the type hints."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agentform_runtime.workload.context import Context


class BadArguments(ValueError):
    """Arguments that do not match the function's schema; the message names them."""


def load_entrypoint(entrypoint: str) -> Callable[..., Any]:
    module_name, _, attribute = entrypoint.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"entrypoint {entrypoint!r} must have the form module:function")
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"entrypoint {entrypoint!r} is not callable")
    return target


class Function:
    """A callable with the schema of its arguments: given explicitly (then validated with
    JSON Schema), or derived from its type hints (then validated by pydantic)."""

    def __init__(self, func: Callable[..., Any], schema: dict[str, Any] | None = None) -> None:
        self.func = func
        self.name = getattr(func, "__name__", "function")
        self.description = inspect.getdoc(func) or ""
        self.context_param: str | None = None
        try:  # resolve annotations written as strings (`from __future__ import annotations`)
            signature = inspect.signature(func, eval_str=True)
        except (NameError, TypeError):
            signature = inspect.signature(func)
        fields: dict[str, Any] = {}
        for param in signature.parameters.values():
            if param.annotation is Context or param.annotation == "Context":
                self.context_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        self.arguments: type[BaseModel] = create_model(
            f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        self._validator = Draft202012Validator(schema) if schema else None
        self.schema = schema or self.arguments.model_json_schema()

    def validate(self, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise BadArguments(f"arguments must be a JSON object, got {type(arguments).__name__}")
        if self._validator is not None:
            problems = [
                f"{'.'.join(str(p) for p in error.absolute_path) or 'arguments'}: {error.message}"
                for error in sorted(self._validator.iter_errors(arguments), key=str)
            ]
            if problems:
                raise BadArguments("; ".join(problems))
            return dict(arguments)
        try:
            parsed = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            ]
            raise BadArguments("; ".join(problems)) from None
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    def call(self, arguments: Any, context: Context) -> Any:
        kwargs = self.validate(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = context
        result = self.func(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result


async def _await(awaitable: Any) -> Any:
    return await awaitable
