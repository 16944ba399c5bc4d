"""How the console answers: HTML rendered from its templates, with its security headers, and
the state it keeps beside the host's (sessions, read queries)."""

from __future__ import annotations

import functools
import gzip
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.api.console.queries import ConsoleQueries
from agentform_runtime.host.api.console.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    Sessions,
    same_token,
)
from agentform_runtime.host.context import host_of

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/console"

# Scripts and styles only from the console's own static files: no inline script or style.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + " UTC"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _short(version: str | None) -> str:
    return "-" if not version else version.removeprefix("sha256:")[:12]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(clock=_clock, ms=_ms, short=_short, percent=_percent, pretty=_pretty)
templates.globals.update(prefix=PREFIX, urlquote=lambda s: quote(str(s), safe=""))


@dataclass
class ConsoleState:
    sessions: Sessions
    queries: ConsoleQueries
    secure_cookies: bool


def console_of(request: Request) -> ConsoleState:
    """The console's state, made on first use beside the host's (app.py stays unaware)."""
    state: ConsoleState | None = getattr(request.app.state, "console", None)
    if state is None:
        host = host_of(request)
        state = ConsoleState(
            Sessions(), ConsoleQueries(host.store.path), host.public_url.startswith("https:")
        )
        request.app.state.console = state
    return state


MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console's forms send nothing else), 64 KiB at most."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise AgentformError(
                413, "TooLarge", f"console forms are limited to {MAX_FORM_BYTES} bytes"
            )
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def gzipped(request: Request, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The body gzipped when the client accepts it and it is worth it (pages are mostly
    repeated markup, htmx is 50 KiB: both shrink to about a quarter)."""
    if len(body) < 1024 or "gzip" not in request.headers.get("accept-encoding", ""):
        return body, {"vary": "accept-encoding"}
    return gzip.compress(body, 6), {"content-encoding": "gzip", "vary": "accept-encoding"}


def html(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = console_of(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    text = templates.get_template(template).render(
        request=request, session=session, path=request.url.path, **context
    )
    body, encoding = gzipped(request, text.encode())
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **encoding})


def redirect(request: Request, location: str) -> Response:
    """303 for a form post; htmx is told to navigate there itself (HX-Redirect)."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"hx-redirect": location, **SECURITY_HEADERS})
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


class SignInNeeded(Exception):
    """Raised by a page whose caller has no valid session."""


class CsrfRefused(Exception):
    """Raised by a change that does not carry the session's CSRF token."""


def session_of(request: Request) -> Session:
    session = console_of(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInNeeded
    return session


def given_csrf(request: Request, form: dict[str, str]) -> str | None:
    """The CSRF token a change carries: the form's hidden field, or htmx's header."""
    return form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)


def check_csrf(request: Request, session: Session, form: dict[str, str]) -> None:
    if not same_token(given_csrf(request, form), session.csrf):
        raise CsrfRefused


P = ParamSpec("P")


def page(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Turn a missing session, a missing CSRF token and an AgentformError into HTML answers
    (the rest of the host answers JSON; the console is read by people). The handler takes
    `request: Request` (FastAPI passes it by keyword)."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs["request"]
        assert isinstance(request, Request)
        try:
            return await handler(*args, **kwargs)
        except SignInNeeded:
            if request.method != "GET" or request.headers.get("hx-request") == "true":
                return html(
                    request,
                    "error.html",
                    401,
                    code="Unauthorized",
                    message="sign in to the console first",
                )
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                f"{PREFIX}/login?next={quote(target, safe='')}",
                status_code=303,
                headers=SECURITY_HEADERS,
            )
        except CsrfRefused:
            return html(
                request,
                "error.html",
                403,
                code="CsrfTokenInvalid",
                message="this change did not carry the console's CSRF token; "
                "reload the page and try again",
            )
        except AgentformError as exc:
            return html(request, "error.html", exc.status, code=exc.code, message=exc.message)

    return wrapper
