"""TEST-ONLY: a Lambda data plane in front of moto, so deployed zips really run.

moto's server is the source of truth for functions, versions, aliases, function URLs, roles,
secrets and DynamoDB, but it runs no code on Invoke. This router stands in front of it on
loopback (clients and workloads use it as their AWS endpoint) and:

- forwards every request to moto, keeping the zip of each CreateFunction/UpdateFunctionCode
  by its CodeSha256 and of each PublishLayerVersion by its ARN (moto keeps no retrievable
  copy);
- answers `POST /2015-03-31/functions/{name}/invocations` itself: it resolves the alias to a
  version *in moto*, checks the caller's IAM role (from moto) allows `lambda:InvokeFunction`
  on the target (else `AccessDeniedException`, as AWS), and runs the version's exact zip under
  AWS's runtime emulator (`aws-lambda-rie` + `awslambdaric`), one emulator per concurrent
  invocation, kept warm and reused as Lambda reuses execution environments. The interpreter
  sees what it would see on Lambda's python3.11 runtime and nothing else: the zip (the task
  root), the version's layers (as /opt/python) and the runtime's own packages (awslambdaric,
  boto3 and what they need), without this environment's site-packages;
- serves each function URL at `/lambda-url/{function name}/{path}`, turning the HTTP request
  into a payload-2.0 event and the handler's result back into HTTP, as Lambda does.

Each emulator gets credentials from moto's STS for its function's role, so the router knows
which function makes each call. Nothing here ships in the product.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import http.client
import importlib.metadata
import io
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from moto.server import ThreadedMotoServer

from agentform_runtime import lambda_packages

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
_INVOKE_PREFIX = "/2015-03-31/functions/"
_URL_PREFIX = "/lambda-url/"
_URL_CONFIG_PREFIX = "/2021-10-31/functions/"
_LAYERS_PREFIX = "/2018-10-31/layers/"
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length", "server", "date"}


def rie_binary() -> Path:
    """`aws-lambda-rie`, built once at the pinned version by scripts/setup-rie.sh."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-rie.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"setting up aws-lambda-rie failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _split_function(raw: str) -> tuple[str, str | None]:
    """A FunctionName (name, name:qualifier, or an ARN) -> (name, qualifier)."""
    if raw.startswith("arn:"):
        parts = raw.split(":")
        return parts[6], parts[7] if len(parts) > 7 else None
    name, _, qualifier = raw.partition(":")
    return name, qualifier or None


@dataclass
class Version:
    """One published version as moto knows it."""

    name: str
    version: str
    arn: str  # the qualified ARN that was invoked (alias or version)
    code_sha: str
    environment: dict[str, str]
    role: str
    handler: str
    timeout_s: int
    memory_mb: int
    layers: tuple[str, ...]  # layer version ARNs, in order


@dataclass
class Emulator:
    """One execution environment: aws-lambda-rie running one version's zip."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    invocations: int = 0


@dataclass
class Stats:
    cold_starts: int = 0
    invocations: int = 0
    spawned: list[str] = field(default_factory=list)


class LambdaRouter:
    def __init__(self, workdir: Path, rie: Path | None = None) -> None:
        self.workdir = workdir
        self.rie = rie or rie_binary()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto_port = 0
        self.url = ""
        self.zips: dict[str, bytes] = {}
        self.layers: dict[str, bytes] = {}  # layer version ARN -> its zip
        self.credentials: dict[str, str] = {}  # access key id -> role ARN
        self.url_qualifiers: dict[str, str | None] = {}  # function -> its URL's alias
        self.stats = Stats()
        self._idle: dict[tuple[str, str, str], list[Emulator]] = {}
        self._all: list[Emulator] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._clients: dict[str, Any] = {}

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> LambdaRouter:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        self.moto.start()
        self.moto_port = int(self.moto.get_host_and_port()[1])
        # moto's backends are per process, not per server: start from an empty account.
        self._forward("POST", "/moto-api/reset", {}, b"")
        router = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, data = router.handle(
                    self.command, self.path, dict(self.headers.items()), body
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            emulators, self._all, self._idle = self._all, [], {}
        for emulator in emulators:
            _stop(emulator.process)
            shutil.rmtree(emulator.directory, ignore_errors=True)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.moto.stop()

    def retire_idle(self) -> int:
        """Stop every idle emulator (as Lambda reclaims idle environments): the next
        invocation of each version is a cold start. Returns how many were stopped."""
        with self._lock:
            idle = [e for emulators in self._idle.values() for e in emulators]
            self._idle = {}
            self._all = [e for e in self._all if e not in idle]
        for emulator in idle:
            _stop(emulator.process)
            shutil.rmtree(emulator.directory, ignore_errors=True)
        return len(idle)

    def client(self, service: str) -> Any:
        """An admin client (the test's own credentials) through the router."""
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _moto_client(self, service: str) -> Any:
        """moto directly (one client per service: creating one costs more than a call)."""
        with self._lock:
            cached = self._clients.get(service)
        if cached is not None:
            return cached
        client = boto3.client(
            service,
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{self.moto_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        with self._lock:
            return self._clients.setdefault(service, client)

    # --- requests --------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path = parts.path
        try:
            if path.startswith(_URL_PREFIX):
                return self._function_url(method, parts.path, parts.query, headers, body)
            if (
                method == "POST"
                and path.startswith(_INVOKE_PREFIX)
                and path.endswith("/invocations")
            ):
                raw = unquote(path[len(_INVOKE_PREFIX) : -len("/invocations")])
                qualifier = parse_qs(parts.query).get("Qualifier", [None])[0]
                return self._invoke(raw, qualifier, headers, body)
        except _AwsError as exc:
            return exc.response()
        result = self._forward(method, raw_path, headers, body)
        if result[0] < 300:
            self._keep_code(method, path, body)
            self._keep_layer(method, path, body, result[2])
            self._keep_url_qualifier(method, path, parts.query)
        return result

    def _forward(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=120)
        try:
            connection.request(method, raw_path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, kept, data
        finally:
            connection.close()

    def _keep_code(self, method: str, path: str, body: bytes) -> None:
        """Keep the zip of CreateFunction / UpdateFunctionCode by its CodeSha256."""
        if not path.startswith(_INVOKE_PREFIX.rstrip("/")):
            return
        creating = method == "POST" and path.rstrip("/") == _INVOKE_PREFIX.rstrip("/")
        updating = method == "PUT" and path.endswith("/code")
        if not (creating or updating):
            return
        request = json.loads(body or b"{}")
        data = self._uploaded(request.get("Code", {}) if creating else request)
        if data is not None:
            self.zips[base64.b64encode(hashlib.sha256(data).digest()).decode()] = data

    def _keep_layer(self, method: str, path: str, body: bytes, answer: bytes) -> None:
        """Keep the zip of PublishLayerVersion by the version ARN moto gave it."""
        publishing = path.startswith(_LAYERS_PREFIX) and path.endswith("/versions")
        if not (method == "POST" and publishing):
            return
        data = self._uploaded(json.loads(body or b"{}").get("Content", {}))
        if data is not None:
            self.layers[json.loads(answer)["LayerVersionArn"]] = data

    def _uploaded(self, code: dict[str, Any]) -> bytes | None:
        """The zip a request's `Code` or `Content` carries: inline, or named in S3."""
        if code.get("ZipFile"):
            return base64.b64decode(code["ZipFile"])
        if code.get("S3Bucket"):
            answer = self._moto_client("s3").get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])
            return bytes(answer["Body"].read())
        return None

    def _keep_url_qualifier(self, method: str, path: str, query: str) -> None:
        """moto forgets which alias a function URL is attached to: remember it."""
        if method == "POST" and path.startswith(_URL_CONFIG_PREFIX) and path.endswith("/url"):
            name = unquote(path[len(_URL_CONFIG_PREFIX) : -len("/url")])
            qualifier = parse_qs(query).get("Qualifier", [None])[0]
            self.url_qualifiers[_split_function(name)[0]] = qualifier

    # --- Invoke ----------------------------------------------------------------------------

    def _resolve(self, raw: str, qualifier: str | None) -> Version:
        name, in_name = _split_function(raw)
        qualifier = qualifier or in_name or "$LATEST"
        lam = self._moto_client("lambda")
        try:
            version = qualifier
            if qualifier != "$LATEST" and not qualifier.isdigit():
                alias = lam.get_alias(FunctionName=name, Name=qualifier)
                version = alias["FunctionVersion"]
                weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
                for other, weight in weights.items():  # blue-green: route the weight there
                    if random.random() < float(weight):
                        version = other
            config = lam.get_function(FunctionName=name, Qualifier=version)["Configuration"]
        except lam.exceptions.ResourceNotFoundException as exc:
            raise _AwsError(404, "ResourceNotFoundException", str(exc)) from None
        account = config["FunctionArn"].split(":")[4]
        unqualified = f"arn:aws:lambda:{REGION}:{account}:function:{name}"
        return Version(
            name=name,
            version=config["Version"] if version != "$LATEST" else "$LATEST",
            arn=f"{unqualified}:{qualifier}",
            code_sha=config["CodeSha256"],
            environment=dict((config.get("Environment") or {}).get("Variables") or {}),
            role=config["Role"],
            handler=config["Handler"],
            timeout_s=int(config.get("Timeout", 3)),
            memory_mb=int(config.get("MemorySize", 128)),
            layers=tuple(str(entry["Arn"]) for entry in config.get("Layers") or []),
        )

    def _authorize(self, headers: dict[str, str], target: Version) -> None:
        """The caller's role must allow lambda:InvokeFunction on the invoked ARN."""
        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        access_key = authorization.partition("Credential=")[2].split("/", 1)[0]
        role = self.credentials.get(access_key)
        if role is None:
            return  # the test itself, with admin credentials
        iam = self._moto_client("iam")
        role_name = role.rsplit("/", 1)[1]
        documents = [
            iam.get_role_policy(RoleName=role_name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        ]
        for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            documents.append(
                iam.get_policy_version(
                    PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
                )["PolicyVersion"]["Document"]
            )
        decision = _evaluate(documents, "lambda:InvokeFunction", target.arn)
        if decision != "Allow":
            session = f"arn:aws:sts::123456789012:assumed-role/{role_name}/{role_name}"
            reason = (
                "with an explicit deny"
                if decision == "Deny"
                else "because no identity-based policy allows the lambda:InvokeFunction action"
            )
            raise _AwsError(
                403,
                "AccessDeniedException",
                f"User: {session} is not authorized to perform: lambda:InvokeFunction on "
                f"resource: {target.arn} {reason}",
            )

    def _invoke(
        self, raw: str, qualifier: str | None, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        target = self._resolve(raw, qualifier)
        self._authorize(headers, target)
        concurrency = self._moto_client("lambda").get_function_concurrency(FunctionName=target.name)
        if concurrency.get("ReservedConcurrentExecutions") == 0:
            raise _AwsError(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )
        payload, failed = self.run(target, body)
        response_headers = {
            "content-type": "application/json",
            "x-amz-executed-version": target.version,
            "x-amzn-requestid": str(uuid.uuid4()),
        }
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return 200, response_headers, payload

    def run(self, target: Version, event: bytes) -> tuple[bytes, bool]:
        """Run one invocation on an idle emulator of `target`, or a new one (a cold start)."""
        key = (target.name, target.version, target.code_sha)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            emulator = idle.pop() if idle else None
            self.stats.invocations += 1
        if emulator is None:
            emulator = self._spawn(target)
        try:
            connection = http.client.HTTPConnection(
                "127.0.0.1", emulator.port, timeout=target.timeout_s + 30
            )
            connection.request(
                "POST",
                "/2015-03-31/functions/function/invocations",
                body=event,
                headers={"content-type": "application/json"},
            )
            payload = connection.getresponse().read()
            connection.close()
        except OSError:
            _stop(emulator.process)
            raise
        emulator.invocations += 1
        with self._lock:
            if emulator.process.poll() is None:
                self._idle.setdefault(key, []).append(emulator)
        try:
            result = json.loads(payload)
        except ValueError:
            result = None
        # RIE answers a handler's exception with 200 and no header: Lambda flags it.
        failed = isinstance(result, dict) and "errorType" in result and "statusCode" not in result
        return payload, failed

    def _spawn(self, target: Version) -> Emulator:
        code = self.zips.get(target.code_sha)
        if code is None:
            raise _AwsError(
                500, "ServiceException", f"the router never saw the zip of {target.name}"
            )
        directory = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=self.workdir))
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(directory)
        credentials = self._moto_client("sts").assume_role(
            RoleArn=target.role, RoleSessionName=target.name[:64]
        )["Credentials"]
        with self._lock:
            self.credentials[credentials["AccessKeyId"]] = target.role
        port, runtime_port = _free_port(), _free_port()
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(directory),
            "LANG": "C.UTF-8",
            **target.environment,
            "AWS_LAMBDA_FUNCTION_NAME": target.name,
            "AWS_LAMBDA_FUNCTION_VERSION": target.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(target.timeout_s),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "AWS_ENDPOINT_URL": self.url,
            "LAMBDA_TASK_ROOT": str(directory),
            "LOG_LEVEL": "error",
            # Lambda's sys.path: the task root, /opt/python (the layers), the runtime's own.
            "PYTHONPATH": os.pathsep.join(
                [
                    str(directory),
                    *(str(self._layer_directory(arn) / "python") for arn in target.layers),
                    str(self._runtime_packages()),
                ]
            ),
        }
        log = open(self.workdir / f"{directory.name}.log", "ab")  # noqa: SIM115 - lives with it
        process = subprocess.Popen(
            [
                str(self.rie),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{port}",
                "--runtime-api-address",
                f"127.0.0.1:{runtime_port}",
                sys.executable,
                "-S",  # without this environment's site-packages, as on Lambda
                "-m",
                "awslambdaric",
                target.handler,
            ],
            cwd=directory,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_listening(port, process)
        emulator = Emulator(process, port, directory)
        with self._lock:
            self._all.append(emulator)
            self.stats.cold_starts += 1
            self.stats.spawned.append(f"{target.name}:{target.version}")
        return emulator

    # --- function URLs ---------------------------------------------------------------------

    def _public(self, name: str) -> bool:
        """Whether the function's resource policy lets anyone call its auth-NONE URL. Since
        October 2025 Lambda requires two statements for that: `lambda:InvokeFunctionUrl`, and
        `lambda:InvokeFunction` (for calls through the URL, or for all)."""
        lam = self._moto_client("lambda")
        try:
            statements = json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
        except lam.exceptions.ResourceNotFoundException:
            return False
        public = [
            s
            for s in statements
            if s.get("Effect") == "Allow" and s.get("Principal") in ("*", {"AWS": "*"})
        ]
        url = any(s.get("Action") == "lambda:InvokeFunctionUrl" for s in public)
        invoke = any(
            s.get("Action") == "lambda:InvokeFunction"
            and (
                s.get("InvokedViaFunctionUrl") in (True, "true")  # moto keeps the request's field
                or "Condition" not in s
                or s["Condition"].get("Bool", {}).get("lambda:InvokedViaFunctionUrl") == "true"
            )
            for s in public
        )
        return url and invoke

    def _layer_directory(self, arn: str) -> Path:
        """The layer version's zip unpacked once (Lambda unpacks layers into /opt)."""
        directory = self.workdir / "layers" / hashlib.sha256(arn.encode()).hexdigest()[:16]
        with self._lock:
            if not directory.exists():
                data = self.layers.get(arn)
                if data is None:
                    raise _AwsError(500, "ServiceException", f"the router never saw layer {arn}")
                partial = directory.with_suffix(".partial")
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(partial)
                partial.rename(directory)
        return directory

    def _runtime_packages(self) -> Path:
        """What Lambda's python3.11 runtime has besides the standard library: awslambdaric,
        boto3 and their dependencies, linked from this environment into one directory."""
        directory = self.workdir / "lambda-runtime"
        with self._lock:
            if not directory.exists():
                partial = directory.with_suffix(".partial")
                partial.mkdir(parents=True)
                for name in sorted(lambda_packages.closure(lambda_packages.LAMBDA_PACKAGES)):
                    distribution = importlib.metadata.distribution(name)
                    tops = {Path(str(f)).parts[0] for f in distribution.files or []}
                    for top in sorted(t for t in tops if t != ".."):
                        link = partial / top
                        if not link.exists():
                            link.symlink_to(Path(str(distribution.locate_file(top))))
                partial.rename(directory)
        return directory

    def _function_url(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        name, _, rest = path[len(_URL_PREFIX) :].partition("/")
        lam = self._moto_client("lambda")
        try:
            config = lam.get_function_url_config(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            return 404, {"content-type": "application/json"}, b'{"Message": "Not Found"}'
        target = self._resolve(config["FunctionArn"], self.url_qualifiers.get(name))
        if config.get("AuthType") == "NONE" and not self._public(name):
            return 403, {"content-type": "application/json"}, b'{"Message":"Forbidden"}'
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        raw_path = "/" + rest
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": {k.lower(): v for k, v in headers.items()},
            "requestContext": {
                "accountId": "anonymous",
                "requestId": str(uuid.uuid4()),
                "http": {"method": method, "path": raw_path, "sourceIp": "127.0.0.1"},
                "timeEpoch": int(time.time() * 1000),
            },
            "body": text,
            "isBase64Encoded": encoded,
        }
        payload, failed = self.run(target, json.dumps(event).encode())
        if failed:
            return 502, {"content-type": "application/json"}, b'{"Message":"Internal Server Error"}'
        result = json.loads(payload) if payload else None
        if not (isinstance(result, dict) and "statusCode" in result):
            return 200, {"content-type": "application/json"}, payload
        data = result.get("body") or ""
        raw = base64.b64decode(data) if result.get("isBase64Encoded") else str(data).encode()
        out = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        return int(result["statusCode"]), out, raw


class _AwsError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({"Type": "User", "Message": self.message, **self.extra}).encode()
        return (
            self.status,
            {"content-type": "application/json", "x-amzn-errortype": self.code},
            body,
        )


def _matches(patterns: Any, value: str) -> bool:
    items = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in items)


def _evaluate(documents: list[Any], action: str, resource: str) -> str:
    """IAM's rule for identity policies: an explicit Deny wins, else an Allow, else implicit
    deny. Resources match with `*` wildcards; an unqualified function ARN does not cover an
    alias ARN (as on AWS)."""
    decision = "ImplicitDeny"
    for document in documents:
        if isinstance(document, str):
            document = json.loads(document)
        statements = document.get("Statement", [])
        for statement in [statements] if isinstance(statements, dict) else statements:
            if not (_matches(statement.get("Action"), action)):
                continue
            if not _matches(statement.get("Resource"), resource):
                continue
            if statement.get("Effect") == "Deny":
                return "Deny"
            decision = "Allow"
    return decision


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"aws-lambda-rie exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)  # polling a subprocess's start-up, bounded by the deadline
    raise TimeoutError(f"aws-lambda-rie did not listen on {port} within {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
