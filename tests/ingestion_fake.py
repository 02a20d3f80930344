"""A stand-in for Application Insights' ingestion endpoint, in a thread: it takes what
azure-monitor-opentelemetry's exporter posts to ``{IngestionEndpoint}/v2.1/track`` (a JSON
list of envelopes, gzip-encoded or not), answers as the service does
(``itemsReceived``/``itemsAccepted``), and keeps every envelope and every raw body. Live
Metrics' pings (``/QuickPulseService.svc/...``) are answered and kept apart."""

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-000000000000"


@dataclass
class Ingestion:
    url: str
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        return (f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url}/;"
                f"LiveEndpoint={self.url}/")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Envelopes of one telemetry type: Request, RemoteDependency, Metric, Message."""
        return [e for e in self.envelopes if e["name"] == f"Microsoft.ApplicationInsights.{kind}"]

    def named(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.of_type(kind) if e["data"]["baseData"].get("name") == name]


@contextmanager
def fake_ingestion() -> Iterator[Ingestion]:
    lock = threading.Lock()
    ingestion: Ingestion

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            answer: dict[str, Any] = {}
            if self.path.rstrip("/").endswith("/track"):
                items = json.loads(raw)
                with lock:
                    ingestion.bodies.append(raw)
                    ingestion.envelopes.extend(items)
                answer = {"itemsReceived": len(items), "itemsAccepted": len(items),
                          "errors": []}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ingestion = Ingestion(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ingestion
    finally:
        server.shutdown()
        server.server_close()


def environment(ingestion: Ingestion) -> dict[str, str]:
    """A process's settings for the fake: no statsbeat and no control plane (they would
    call Microsoft's own endpoints)."""
    return {"APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true"}
