"""A real HTTP server on 127.0.0.1 serving model files, with failure modes.

``GET /<mode>/<file>`` serves ``files[<file>]`` (Range requests answered with
206) in one of these modes:

* ``ok``: normally;
* ``drop``: the first request for a file sends its headers and half the body,
  then drops the connection; later requests are served normally (resumable);
* ``dropall``: every response stops half way;
* ``corrupt``: one byte in the middle of the data is flipped;
* ``norange``: ignores Range and always sends the whole file with 200;
* ``stall``: sends headers, then nothing for a few seconds;
* ``slow``: sends 1 MB every 20 ms (so a test can kill a client mid-transfer);
* ``404`` / ``500``: that status.

Every request is logged as (mode, file, Range header) for the tests to check.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple


class ModelServer:
    def __init__(self, files: Dict[str, bytes]) -> None:
        self.files = files
        self.log: List[Tuple[str, str, Optional[str]]] = []
        self._dropped: set = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # clients that vanish (killed) are expected
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "ModelServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self, mode: Optional[str] = None) -> List[Tuple[str, str, Optional[str]]]:
        with self._lock:
            return [r for r in self.log if mode is None or r[0] == mode]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        _, mode, name = (h.path.split("/", 2) + ["", ""])[:3]
        rng = h.headers.get("Range")
        with self._lock:
            self.log.append((mode, name, rng))
            first = (mode, name) not in self._dropped
            self._dropped.add((mode, name))
        if mode in ("404", "500"):
            h.send_error(int(mode))
            return
        data = self.files.get(name)
        if data is None:
            h.send_error(404)
            return
        if mode == "corrupt":
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and mode != "norange":
            start = int(m.group(1))
            if start >= len(data):
                h.send_error(416)
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if mode == "stall":
            h.wfile.flush()
            time.sleep(3)
            return
        if mode == "dropall" or (mode == "drop" and first):
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        if mode == "slow":
            for i in range(0, len(body), 1 << 20):
                h.wfile.write(body[i:i + (1 << 20)])
                time.sleep(0.02)
            return
        h.wfile.write(body)
