"""The AWS platform: every resource on AWS Lambda (+ IAM, Secrets Manager, DynamoDB, SSM, S3).

`AwsPlatform` is imported on first use, so that `regions` (checked at preview) loads no boto3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentform.platforms.aws.platform import AwsPlatform

__all__ = ["AwsPlatform"]


def __getattr__(name: str) -> Any:
    if name == "AwsPlatform":
        from agentform.platforms.aws.platform import AwsPlatform

        return AwsPlatform
    raise AttributeError(f"module 'agentform.platforms.aws' has no attribute '{name}'")
