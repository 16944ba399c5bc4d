"""Where Agentform deploys: one interface (`Platform`), two platforms (`local`, `aws`).

The implementations are imported when opened: the program and `pulumi preview` never call a
platform, and httpx or boto3 take a noticeable time to import."""

from __future__ import annotations

from agentform.platforms.base import PLATFORMS, Platform, PlatformSettings

__all__ = ["PLATFORMS", "Platform", "PlatformSettings", "open_platform"]


def open_platform(settings: PlatformSettings, token: str) -> Platform:
    """A platform client for these settings (`token`: the local host's admin token)."""
    if settings.platform == "aws":
        from agentform.platforms.aws import AwsPlatform

        return AwsPlatform(settings)
    from agentform.platforms.local import Endpoint, LocalPlatform
    from agentform.settings import resolve_endpoint

    return LocalPlatform(Endpoint(resolve_endpoint(settings.endpoint), token))
