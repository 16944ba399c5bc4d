"""A real OTLP/HTTP receiver on loopback: it accepts `POST /v1/traces` with JSON bodies, as a
collector does, and keeps every span it was sent (parsed with the official OTLP JSON
classes, so a body that is not a valid ExportTraceServiceRequest fails the test)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto_json.collector.trace.v1.trace_service import ExportTraceServiceRequest


def _value(value: dict[str, Any]) -> Any:
    if "intValue" in value:
        return int(value["intValue"])  # int64 travels as a string in OTLP/JSON
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    return value


class OtlpReceiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = 404
                if self.path == "/v1/traces":
                    ExportTraceServiceRequest.from_json(body)  # raises on a malformed body
                    with receiver._lock:
                        receiver.requests.append(json.loads(body))
                        receiver.content_types.append(self.headers.get("content-type", ""))
                    status = 200
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, each with its resource and its attributes as a plain dict."""
        found = []
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            for resource_spans in request["resourceSpans"]:
                resource = {
                    a["key"]: _value(a["value"])
                    for a in resource_spans["resource"].get("attributes", [])
                }
                for scope_spans in resource_spans["scopeSpans"]:
                    for span in scope_spans["spans"]:
                        attributes = {
                            a["key"]: _value(a["value"]) for a in span.get("attributes", [])
                        }
                        found.append({**span, "attributes": attributes, "resource": resource})
        return found


def main() -> None:
    """Run a receiver in its own process (benchmarks): print its URL, serve until killed;
    `GET /count` answers the number of spans received."""
    receiver = OtlpReceiver()
    handler = receiver.server.RequestHandlerClass
    spans_of = receiver.spans

    def do_get(self: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"spans": len(spans_of())}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    handler.do_GET = do_get  # type: ignore[attr-defined]
    print(receiver.url, flush=True)
    receiver.server.serve_forever()


if __name__ == "__main__":
    main()
