"""A webhook receiver for the e2e tests: remembers every JSON body POSTed to it.

POST <any path> stores {"path", "body"}; GET /received returns the list.
"""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode(errors="replace")
        RECEIVED.append({"path": self.path, "body": parsed})
        self._send(200, {"ok": True})

    def do_GET(self) -> None:
        self._send(200, RECEIVED)

    def _send(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
