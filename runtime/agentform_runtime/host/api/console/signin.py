"""Signing in and out of the console, and its static files (served without a session)."""

from __future__ import annotations

import functools
import gzip
import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from agentform_runtime.errors import AgentformError, not_found
from agentform_runtime.host.api.console.pages import (
    PREFIX,
    STATIC,
    check_csrf,
    console_of,
    given_csrf,
    html,
    page,
    read_form,
    redirect,
    session_of,
)
from agentform_runtime.host.api.console.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    same_token,
)
from agentform_runtime.host.context import host_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)
STATIC_FILES = {
    "htmx.min.js": "text/javascript",
    "console.css": "text/css",
    "htmx.LICENSE": "text/plain",
}


@functools.cache
def _static_bytes(name: str, compressed: bool) -> bytes:
    data = (STATIC / name).read_bytes()
    return gzip.compress(data, 9) if compressed else data


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise not_found(f"static file '{name}'")
    compressed = "gzip" in request.headers.get("accept-encoding", "")
    headers = {
        "cache-control": "public, max-age=3600",
        "x-content-type-options": "nosniff",
        "vary": "accept-encoding",
    }
    if compressed:
        headers["content-encoding"] = "gzip"
    return Response(_static_bytes(name, compressed), media_type=media_type, headers=headers)


@router.get("/login")
@page
async def login_form(request: Request, next: str = "") -> Response:
    if console_of(request).sessions.get(request.cookies.get(SESSION_COOKIE)):
        return redirect(request, _safe_next(next))
    return _login_page(request, next, error=None, status=200)


def _login_page(request: Request, next: str, error: str | None, status: int) -> Response:
    csrf = secrets.token_urlsafe(32)
    response = html(request, "login.html", status, csrf=csrf, next=next, error=error)
    response.set_cookie(
        LOGIN_COOKIE,
        csrf,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=console_of(request).secure_cookies,
    )
    return response


def _safe_next(next: str) -> str:
    """Only pages of the console itself (no open redirect)."""
    return next if next.startswith(PREFIX + "/") or next == PREFIX else PREFIX


@router.post("/login")
@page
async def login(request: Request) -> Response:
    form = await read_form(request)
    next = form.get("next", "")
    login_csrf = request.cookies.get(LOGIN_COOKIE)
    if not login_csrf or not same_token(given_csrf(request, form), login_csrf):
        return _login_page(
            request, next, "the sign-in form expired; enter the token again", status=403
        )
    try:
        host_of(request).auth.admin({"authorization": f"Bearer {form.get('token', '').strip()}"})
    except AgentformError as exc:
        return _login_page(request, next, exc.message, status=exc.status)
    state = console_of(request)
    session = state.sessions.create()
    response = redirect(request, _safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(state.sessions.ttl_s),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=state.secure_cookies,
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    session = session_of(request)
    check_csrf(request, session, await read_form(request))
    console_of(request).sessions.end(session.id)
    response = redirect(request, f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response
