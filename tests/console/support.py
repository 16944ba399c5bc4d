"""Signing in to the console over plain HTTP, as a browser's form post would."""

from __future__ import annotations

import re

import httpx

from tests.support.hosts import RunningHost

CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF_INPUT.search(page)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def sign_in(host: RunningHost, token: str | None = None) -> tuple[httpx.Client, httpx.Response]:
    """A cookie-keeping client, and the answer to its sign-in post."""
    client = httpx.Client(base_url=host.url, follow_redirects=False, timeout=60)
    form = client.get("/console/login")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "token": host.token if token is None else token},
    )
    return client, answer
