"""The HTTP server of `pseidon-dagster metrics-server`: GET /metrics (JSON) and /metrics/prometheus."""
from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Callable

from ..config import Settings
from .page import Snapshotter
from .prometheus import prometheus_text

log = logging.getLogger(__name__)

def make_server(settings: Settings | Callable[[], Settings], host: str = "127.0.0.1", port: int = 8282,
                cache_s: float = 5.0) -> http.server.ThreadingHTTPServer:
    snap = Snapshotter(settings, cache_s)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0].rstrip("/")
            try:
                if path == "/metrics":
                    body = json.dumps(snap.snapshot(), indent=2, sort_keys=True).encode()
                    ctype = "application/json"
                elif path == "/metrics/prometheus":
                    from prometheus_client import CONTENT_TYPE_LATEST

                    body, ctype = prometheus_text(snap.snapshot()), CONTENT_TYPE_LATEST
                else:
                    self.send_error(404, "try /metrics or /metrics/prometheus")
                    return
            except Exception as e:  # noqa: BLE001 - one line, no traceback, to the scraper
                log.warning("metrics page failed: %s: %s", type(e).__name__, e)
                body = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.address_string(), fmt % args)

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    return Server((host, port), Handler)


def serve(settings: Settings | Callable[[], Settings], host: str = "127.0.0.1", port: int = 8282,
          cache_s: float = 5.0) -> http.server.ThreadingHTTPServer:
    """Start the server in a background thread; shutdown() and server_close() stop it."""
    server = make_server(settings, host, port, cache_s)
    threading.Thread(target=server.serve_forever, daemon=True, name="pseidon-metrics").start()
    return server
