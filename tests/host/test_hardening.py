"""Hostile input, replayed: each attack of issue 9 (items 4-8) now fails in the right way.

A 4xx with a JSON error naming the field for a bad request; a 502 naming the problem for a
bad worker result; and an execution record that tells the truth either way."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from agentform.packaging import build_artifact
from agentform_runtime.host.state.artifacts import (
    MAX_ENTRIES,
    MAX_UNPACKED_BYTES,
    ArtifactStore,
    ArtifactTooLarge,
    InvalidArtifact,
)
from agentform_runtime.specs import Manifest, WorkloadKind
from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.runtime_clients import IdleWorker
from tests.support.workloads import deploy, function_artifact, setup_environment

# A handler that answers whatever Lambda result the caller asks for, so that a test can
# play a hostile workload; the readiness probe gets a plain answer.
RAW_HANDLER = """
import json

def handler(event, context):
    if event.get("rawPath") == "/_agentform/health":
        return {"statusCode": 200, "body": "ok"}
    request = json.loads(event.get("body") or "{}")
    if "size" in request:
        return {"statusCode": 200, "body": "x" * request["size"]}
    if "source_ip" in request:
        return {"statusCode": 200, "body": event["requestContext"]["http"]["sourceIp"]}
    return request["result"]
"""

MB = 1024 * 1024


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHost, str]]:
    """A host with the raw-result function `raw` deployed; yields (host, API key)."""
    workdir = tmp_path_factory.mktemp("hardening")
    host = RunningHost(workdir / "state").start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        artifact = function_artifact(workdir, "raw", RAW_HANDLER, handler="tool.handler")
        deploy(admin, artifact, "raw", memory_mb=2048).raise_for_status()
        yield host, key
    finally:
        host.stop()


def _answer(raw: tuple[RunningHost, str], result: Any) -> httpx.Response:
    host, key = raw
    return host.client(key).post("/run/development/functions/raw", json={"result": result})


def test_a_forwarded_for_header_does_not_change_the_source_ip_a_workload_sees(
    raw: tuple[RunningHost, str],
) -> None:
    """Every client of the host is on loopback, workloads' hops included: none may pass
    for another address by sending `X-Forwarded-For` (the header itself still goes through)."""
    host, key = raw
    response = host.client(key).post(
        "/run/development/functions/raw",
        json={"source_ip": True},
        headers={"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"},
    )
    assert response.status_code == 200, response.text
    assert response.text == "127.0.0.1"


def _record(host: RunningHost, response: httpx.Response) -> Any:
    request_id = response.headers["x-agentform-request-id"]
    return host.admin().get(f"/v1/executions/{request_id}").json()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


# --- item 4: a worker response larger than the limit ----------------------------------------


def test_a_300_mb_response_is_a_502_and_the_host_never_holds_it(
    raw: tuple[RunningHost, str],
) -> None:
    host, key = raw
    assert host.process is not None
    run = host.client(key, timeout=300)
    response = run.post("/run/development/functions/raw", json={"size": 300 * MB})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "ResponseTooLarge" and str(6 * MB) in error["message"]
    record = _record(host, response)
    assert (record["status"], record["http_status"]) == ("error", 502)
    assert record["error_class"] == "ResponseTooLarge"
    peak = _peak_rss_mb(host.process.pid)
    print(f"host peak RSS after a 300 MB response: {peak:.0f} MB")
    assert peak < 150, f"the host's peak RSS reached {peak:.0f} MB"
    # The rest of the body was discarded, not read: the same worker serves the next call.
    assert _answer(raw, {"statusCode": 200, "body": "fine"}).text == "fine"


def test_a_response_just_over_the_limit_is_a_502_and_one_at_it_passes(
    raw: tuple[RunningHost, str],
) -> None:
    host, key = raw
    run = host.client(key)
    over = run.post("/run/development/functions/raw", json={"size": 6 * MB + 1})
    assert over.status_code == 502 and over.json()["error"]["code"] == "ResponseTooLarge"
    assert _record(host, over)["error_class"] == "ResponseTooLarge"
    # The JSON envelope around the body counts too, so stay a little under the limit.
    under = run.post("/run/development/functions/raw", json={"size": 6 * MB - 100})
    assert under.status_code == 200 and len(under.content) == 6 * MB - 100


# --- item 6: results HTTP cannot carry, and inputs that used to raise -------------------------

BAD_RESULTS = [
    ({"statusCode": "200", "body": "x"}, "statusCode"),
    ({"statusCode": 99, "body": "x"}, "statusCode"),
    ({"statusCode": 1000, "body": "x"}, "statusCode"),
    ({"statusCode": True, "body": "x"}, "statusCode"),
    ({"statusCode": 200, "headers": ["x-a", "b"]}, "headers"),
    ({"statusCode": 200, "headers": {"x-a": "b\r\nx-injected: 1"}}, "headers.x-a"),
    ({"statusCode": 200, "headers": {"bad name": "b"}}, "headers"),
    ({"statusCode": 200, "headers": {"x-a\n": "b"}}, "headers"),
    ({"statusCode": 200, "headers": {"x-a": "b\n"}}, "headers.x-a"),
    ({"statusCode": 200, "headers": {"content-length": "\u00b2"}, "body": "xx"}, "headers"),
    ({"statusCode": 200, "headers": {"x-a": {"nested": 1}}}, "headers.x-a"),
    ({"statusCode": 200, "headers": {"content-length": "5"}, "body": "too long"}, "headers"),
    ({"statusCode": 200, "headers": {"content-length": "-1"}, "body": ""}, "headers"),
    ({"statusCode": 200, "isBase64Encoded": True, "body": "!!not base64!!"}, "body"),
    ({"statusCode": 200, "isBase64Encoded": True, "body": 5}, "body"),
    ({"statusCode": 200, "isBase64Encoded": "yes", "body": "eA=="}, "isBase64Encoded"),
]


@pytest.mark.parametrize(("result", "field"), BAD_RESULTS, ids=[f for _, f in BAD_RESULTS])
def test_a_result_http_cannot_carry_is_a_502_naming_the_field(
    raw: tuple[RunningHost, str], result: dict[str, Any], field: str
) -> None:
    response = _answer(raw, result)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidWorkerResponse"
    assert error["field"].startswith(field) and field in error["message"]
    record = _record(raw[0], response)
    assert (record["status"], record["http_status"]) == ("error", 502)
    assert record["error_class"] == "InvalidWorkerResponse" and field in record["error"]


def test_results_http_can_carry_are_answered_faithfully(raw: tuple[RunningHost, str]) -> None:
    plain = _answer(raw, {"statusCode": 201, "headers": {"x-count": 3}, "body": "made"})
    assert (plain.status_code, plain.headers["x-count"], plain.text) == (201, "3", "made")
    length = _answer(raw, {"statusCode": 200, "headers": {"content-length": "2"}, "body": "ok"})
    assert length.status_code == 200 and length.text == "ok"
    # Hop-by-hop headers are the host's business: dropped, not forwarded.
    chunked = _answer(
        raw, {"statusCode": 200, "headers": {"transfer-encoding": "chunked"}, "body": "hi"}
    )
    assert chunked.status_code == 200 and chunked.text == "hi"
    # HTTP forbids a body with 204: it is dropped rather than left to corrupt the connection.
    empty = _answer(raw, {"statusCode": 204, "body": "ignored"})
    assert empty.status_code == 204 and empty.content == b""
    assert _record(raw[0], empty)["status"] == "ok"
    encoded = _answer(raw, {"statusCode": 200, "isBase64Encoded": True, "body": "aGk="})
    assert encoded.content == b"hi"
    failed = _answer(raw, {"statusCode": 503, "body": "busy"})
    record = _record(raw[0], failed)
    assert failed.status_code == 503 and (record["status"], record["http_status"]) == (
        "error",
        503,
    )


def test_deeply_nested_json_on_the_run_gateway_is_a_400(raw: tuple[RunningHost, str]) -> None:
    host, key = raw
    nested = b"[" * 200_000 + b"]" * 200_000
    response = host.client(key).post(
        "/run/development/functions/raw",
        content=nested,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "MalformedJson" and "nested too deeply" in error["message"]


def test_a_non_ascii_bearer_token_is_a_401(raw: tuple[RunningHost, str]) -> None:
    host, _ = raw
    for path in ("/v1/environments", "/run/development/functions/raw"):
        response = httpx.get(
            host.url + path, headers={b"authorization": "Bearer jalapeño".encode("latin-1")}
        )
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "Unauthorized"


# --- item 5: zip bombs and unpacked copies --------------------------------------------------


def _zeros_zip(size: int) -> bytes:
    """An honest zip bomb: `size` zero bytes, which deflate to almost nothing."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("agentform.json", "{}")
        with archive.open("zeros.bin", "w") as member:
            for _ in range(size // MB):
                member.write(bytes(MB))
    return buffer.getvalue()


def _lying_zip(actual: int, declared: int) -> bytes:
    """A zip whose member `zeros.bin` declares `declared` bytes but inflates to `actual`."""
    data = bytearray(_zeros_zip(actual))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        member = archive.getinfo("zeros.bin")
    struct.pack_into("<I", data, member.header_offset + 22, declared)  # local header
    struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, declared)  # its central entry
    return bytes(data)


def test_a_zip_that_unpacks_beyond_250_mb_is_refused_at_upload(host: RunningHost) -> None:
    bomb = _zeros_zip(300 * MB)
    assert len(bomb) < 2 * MB
    response = host.admin().post("/v1/artifacts", content=bomb)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "TooLarge" and error["field"] == "artifact"
    assert str(MAX_UNPACKED_BYTES) in error["message"] and "unpacked" in error["message"]
    assert list((host.state_dir / "artifacts" / "blobs").iterdir()) == []  # nothing kept


def test_a_zip_with_too_many_entries_is_refused_at_upload(host: RunningHost) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(MAX_ENTRIES + 1):
            archive.writestr(f"f{index}", b"")
    response = host.admin().post("/v1/artifacts", content=buffer.getvalue())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (
        error["code"] == "InvalidArtifact" and f"limit is {MAX_ENTRIES} entries" in error["message"]
    )


def test_a_zip_that_lies_about_its_sizes_is_refused_at_upload(host: RunningHost) -> None:
    response = host.admin().post("/v1/artifacts", content=_lying_zip(64 * MB, 1000))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "InvalidArtifact"


def test_unpacking_checks_declared_sizes_and_counts_the_bytes_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blobs already on disk (kept by an older host) are checked again when unpacked."""
    import agentform_runtime.host.state.artifacts as artifacts

    store = ArtifactStore(tmp_path)
    monkeypatch.setattr(artifacts, "MAX_UNPACKED_BYTES", 4 * MB)
    (store.blobs / "1").write_bytes(_zeros_zip(8 * MB))
    with pytest.raises(ArtifactTooLarge, match="the limit is 4194304 bytes unpacked"):
        store.directory("sha256:1")
    (store.blobs / "2").write_bytes(_lying_zip(8 * MB, 1000))
    with pytest.raises(InvalidArtifact, match="CRC"):
        store.directory("sha256:2")
    # Were the declared sizes not checked, the bytes written are still counted.
    monkeypatch.setattr(artifacts, "check_zip", lambda archive: archive.infolist())
    with pytest.raises(ArtifactTooLarge, match="more than 4194304 bytes"):
        store.directory("sha256:1")
    assert list(store.unpacked.iterdir()) == []  # no partial copy left behind


def test_hostile_source_is_byte_compiled_in_a_bounded_child_not_in_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module whose compilation needs ~200 MB: over the child's (lowered) limit, it gets no
    .pyc, and the unpack still succeeds; the host's own peak memory does not move."""
    import resource

    import agentform_runtime.host.state.artifacts as artifacts

    monkeypatch.setattr(artifacts, "COMPILE_MEMORY_BYTES", 96 * MB, raising=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("hostile.py", "x = [" + "1," * 300_000 + "]\n")
        archive.writestr("plain.py", "y = 1\n")
    store = ArtifactStore(tmp_path)
    digest = store.put(buffer.getvalue())
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    root = store.directory(digest)
    assert (root / "hostile.py").exists()
    compiled = {p.name.split(".")[0] for p in (root / "__pycache__").iterdir()}
    assert compiled == {"plain"}  # the child compiled the plain module, and ran out on the other
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024


def test_an_agentform_json_over_1_mb_is_refused_before_it_is_read(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    setup_environment(admin)
    buffer = io.BytesIO()
    manifest = {"handler": "tool.main", "padding": "x" * (2 * MB)}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("agentform.json", json.dumps(manifest))
        archive.writestr("tool.py", "def main():\n    return {}\n")
    response = deploy(admin, buffer.getvalue(), "big")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "artifact"
    assert "larger than the limit of 1048576 bytes" in error["message"], error


def test_a_zip_with_a_file_where_a_directory_goes_is_a_400_naming_the_member(
    host: RunningHost,
) -> None:
    admin = host.admin()
    setup_environment(admin)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("agentform.json", json.dumps({"handler": "tool.main"}))
        archive.writestr("a", "a file")
        archive.writestr("a/b", "under the file")
    response = deploy(admin, buffer.getvalue(), "clash")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidArtifact" and "'a/b'" in error["message"], error


def test_an_unpacked_copy_goes_with_the_last_version_that_uses_it(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    setup_environment(admin)
    artifact = function_artifact(tmp_path, "gone", "def main() -> dict:\n    return {}\n")
    deploy(admin, artifact, "gone").raise_for_status()
    unpacked = host.state_dir / "artifacts" / "unpacked"
    [copy] = [p for p in unpacked.iterdir()]
    assert (copy / "agentform.json").exists()
    assert (
        admin.delete("/v1/environments/development/deployments/functions/gone").status_code == 204
    )
    # The copy is renamed away at once, then deleted in a thread: wait for both.
    wait_until(lambda: not copy.exists() and list(unpacked.iterdir()) == [])


# --- item 7: secrets echoed by an upstream --------------------------------------------------

ECHO_MODEL = """
import json, os

def handler(event, context):
    if event.get("rawPath") == "/_agentform/health":
        return {"statusCode": 200, "body": "ok"}
    secret = json.loads(os.environ["AGENTFORM_CONNECTION"])["secrets"]["api_key"]
    return {"statusCode": 401, "body": json.dumps({"error": {"message": "bad key " + secret}})}
"""


def test_a_workload_echoing_its_connection_secret_is_redacted_by_the_host(
    host: RunningHost, tmp_path: Path
) -> None:
    """Whatever the artifact's code does, the host removes the secret from the failure."""
    admin = host.admin()
    key = setup_environment(admin)
    admin.put(
        "/v1/connections/leaky",
        json={"provider": "openai-compatible", "secrets": {"api_key": "sk-live-SECRET-777"}},
    ).raise_for_status()
    code = tmp_path / "leaky"
    code.mkdir()
    (code / "tool.py").write_text(ECHO_MODEL)
    manifest = Manifest(kind=WorkloadKind.MODELS, name="leaky", handler="tool.handler")
    deploy(
        admin, build_artifact(manifest, code), "leaky", kind="models", connection="leaky"
    ).raise_for_status()
    response = host.client(key).post("/run/development/models/leaky/v1/chat/completions", json={})
    assert response.status_code == 401
    assert "sk-live-SECRET-777" not in response.text and "[redacted]" in response.text
    record = _record(host, response)
    assert "sk-live-SECRET-777" not in json.dumps(record) and "[redacted]" in record["error"]
    trace = admin.get(f"/v1/traces/{record['trace_id']}").text
    assert "sk-live-SECRET-777" not in trace
    for name in ("state.db", "state.db-wal"):
        path = host.state_dir / name
        assert not path.exists() or b"sk-live-SECRET-777" not in path.read_bytes()


LEAKY_FUNCTION = """
import json
from urllib.parse import quote, quote_plus

from agentform_runtime.workload.context import Context


def main(ctx: Context) -> dict:
    secret = ctx.connections["db"].secrets["password"]
    forms = [secret, json.dumps(secret), quote(secret), quote(secret, safe=""), quote_plus(secret)]
    raise RuntimeError("could not log in with " + " | ".join(forms))
"""
# Each form differs: raw, JSON-escaped, URL-encoded with and without '/' kept, form-encoded.
LEAKY_SECRET = 'pg-SECRET "4242"/x+y'


def test_a_function_echoing_a_declared_connections_secret_is_redacted(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    admin.put(
        "/v1/connections/db",
        json={"provider": "generic", "secrets": {"password": LEAKY_SECRET}},
    ).raise_for_status()
    artifact = function_artifact(tmp_path, "leaky-fn", LEAKY_FUNCTION)
    deploy(admin, artifact, "leaky-fn", connections=["db"]).raise_for_status()
    response = host.client(key).post("/run/development/functions/leaky-fn", json={})
    assert response.status_code >= 400
    message = response.json()["error"]["message"]
    assert message.endswith('[redacted] | "[redacted]" | [redacted] | [redacted] | [redacted]')
    assert "4242" not in response.text
    record = _record(host, response)
    assert "4242" not in json.dumps(record) and "[redacted]" in record["error"]


CLASS_LEAK = """
import os


def handler(event, context):
    if event.get("rawPath") == "/_agentform/health":
        return {"statusCode": 200, "body": "ok"}
    secret = os.environ["AGENTFORM_CONNECTIONS"].split("pg-")[1].split('"')[0]
    raise type("Leak_pg-" + secret + "_" + "x" * 500, (Exception,), {})("boom")
"""


def test_an_error_class_is_redacted_and_cut_to_100_characters(
    host: RunningHost, tmp_path: Path
) -> None:
    admin = host.admin()
    key = setup_environment(admin)
    admin.put(
        "/v1/connections/db",
        json={"provider": "generic", "secrets": {"password": "pg-CLASS-SECRET-99"}},
    ).raise_for_status()
    artifact = function_artifact(tmp_path, "class-leak", CLASS_LEAK, handler="tool.handler")
    deploy(admin, artifact, "class-leak", connections=["db"]).raise_for_status()
    response = host.client(key).post("/run/development/functions/class-leak", json={})
    assert response.status_code == 502, response.text
    assert "pg-CLASS-SECRET-99" not in response.text
    record = _record(host, response)
    assert "CLASS-SECRET" not in json.dumps(record)
    assert record["error_class"].startswith("Leak_") and len(record["error_class"]) == 100


# --- item 8: loose input on the control plane -----------------------------------------------


def test_the_control_plane_refuses_bodies_over_1_mb(host: RunningHost) -> None:
    admin = host.admin()
    huge = {"description": "x" * (2 * MB)}
    response = admin.put("/v1/environments/development", json=huge)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "PayloadTooLarge" and str(MB) in error["message"]
    assert admin.get("/v1/environments/development").status_code == 404
    # Streamed without a length, the same.
    chunks = (b'{"description": "' + b"x" * MB, b"x" * MB + b'"}')
    streamed = admin.put(
        "/v1/environments/development",
        content=iter(chunks),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert admin.put("/v1/environments/development", json={"description": "ok"}).status_code == 201


def test_enabled_must_be_a_real_boolean(host: RunningHost, tmp_path: Path) -> None:
    admin = host.admin()
    setup_environment(admin)
    artifact = function_artifact(tmp_path, "flag", "def main() -> dict:\n    return {}\n")
    for value in ("yes", 1, "true"):
        response = deploy(admin, artifact, "flag", enabled=value)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "InvalidField" and error["fields"] == ["enabled"]
    release = admin.post(
        "/v1/environments/development/deployments/functions/flag/release",
        json={"target_environment": "production", "copy_policies": "yes"},
    )
    assert release.status_code == 400 and release.json()["error"]["fields"] == ["copy_policies"]


def test_a_token_budget_beyond_10_to_the_12_is_refused(host: RunningHost) -> None:
    policy = {"type": "max_tokens", "budgets": [{"window": "day", "total": 10**30}]}
    response = host.admin().put("/v1/policies/huge", json=policy)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["fields"] == ["budgets.0.total"] and "1000000000000" in error["message"]


def test_a_jwt_without_exp_is_refused(tmp_path: Path) -> None:
    secret = "test-secret-of-32-bytes-or-more!!"
    host = RunningHost(tmp_path / "state", ("--jwt-secret", secret)).start()
    try:
        admin = host.admin()
        setup_environment(admin)
        url = "/run/development/functions/none"
        forever = jwt.encode({"sub": "mallory"}, secret, algorithm="HS256")
        refused = host.client(forever).post(url, json={})
        assert refused.status_code == 401
        assert '"exp"' in refused.json()["error"]["message"]
        expiring = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, secret, "HS256")
        assert host.client(expiring).post(url, json={}).status_code == 404  # authenticated
    finally:
        host.stop()


def test_a_name_with_a_trailing_newline_is_not_a_name() -> None:
    from agentform_runtime.specs import check_name

    assert check_name("billing") == "billing"
    with pytest.raises(ValueError, match="is not a valid name"):
        check_name("billing\n")


def _big_headers() -> dict[str, str]:
    return {f"x-pad-{i}": "p" * 1000 for i in range(80)}  # 80 KB in total


def test_headers_over_64_kib_are_a_431_on_the_host(host: RunningHost) -> None:
    response = httpx.get(f"{host.url}/health", headers=_big_headers())
    assert response.status_code == 431, response.text
    error = response.json()["error"]
    assert error["field"] == "headers" and "65536 bytes" in error["message"]
    assert httpx.get(f"{host.url}/health").status_code == 200


def test_worker_sent_headers_over_64_kib_are_a_431_on_the_runtime_api() -> None:
    import asyncio

    from agentform_runtime.host.running.runtime_api import PREFIX, RuntimeApi

    async def post() -> httpx.Response:
        api = RuntimeApi()
        port = await api.listen(IdleWorker())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                headers = {"Lambda-Runtime-Function-Error-Type": "E" * (70 * 1024)}
                return await client.post(
                    f"{PREFIX}/invocation/r1/error", headers=headers, content=b"{}"
                )
        finally:
            api.close(port)

    response = asyncio.run(post())
    assert response.status_code == 431, response.text
    assert response.json()["error"]["field"] == "headers"
