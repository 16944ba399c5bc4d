"""Stand-ins for the worker side of a Runtime API listener, for tests of the API itself."""

from __future__ import annotations


class IdleWorker:
    """A worker with no invocation: every answer posted to it is unknown; `secrets` is what
    it hands out (once asked, every time)."""

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self.secrets = secrets

    async def next_invocation(self) -> None:
        return None

    def post_outcome(self, request_id: str, outcome: object) -> bool:
        return False

    def post_init_error(self, body: bytes, error_type: str) -> None:
        return None

    def take_secrets(self) -> dict[str, str] | None:
        return self.secrets
