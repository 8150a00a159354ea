"""A real HTTP server standing in for a Slack incoming webhook (127.0.0.1, an ephemeral port)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PATH = "/services/T000/B000/s3cretSlackT0ken"


class SlackStandIn:
    """Answers each POST with the next scripted status (200 once the script is spent) and keeps
    the bodies: ``received`` every one, ``accepted`` those it answered 200."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.received: list[dict] = []
        self.accepted: list[dict] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in._lock:
                    status = stand_in.script.pop(0) if stand_in.script else 200
                    stand_in.received.append(body)
                    if status == 200:
                        stand_in.accepted.append(body)
                reply = b"ok" if status == 200 else b"invalid_blocks"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with ``statuses``, then 200 again."""
        with self._lock:
            self.script = list(statuses)

    def texts(self, accepted: bool = True) -> Iterator[str]:
        """Every block's text of the accepted (or all received) messages, as one stream."""
        for body in self.accepted if accepted else self.received:
            yield json.dumps(body, ensure_ascii=False)

    def __enter__(self) -> SlackStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
