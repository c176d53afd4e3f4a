"""Streaming test server for the gateway; see the Dockerfile."""

import base64
import hashlib
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def event(i: int, sent: float) -> bytes:
    return f'data: {{"choices": [{{"delta": {{"content": "tok{i}"}}}}], "sent": {sent:.3f}}}\n\n'.encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/ws":
            return self.websocket()
        self.answer({"path": self.path, "authorization": self.headers.get("Authorization"),
                     "request_id": self.headers.get("X-Request-Id")})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/v1/chat/completions" and body.get("stream"):
            return self.stream(int(body.get("chunks", 5)), float(body.get("gap", 0.5)), body.get("type", "sse"))
        self.answer({"path": self.path, "body": body})

    def answer(self, payload: dict) -> None:
        data = json.dumps(payload | {"replica": os.uname().nodename}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, chunks: int, gap: float, kind: str) -> None:
        """An OpenAI-style streaming completion: one event every gap seconds, each saying
        when it was sent. kind "sse": server-sent events, chunked; "ndjson": the same as
        application/x-ndjson; "sized": with a Content-Length, written slowly (only a
        proxy that flushes as the app writes passes it on chunk by chunk)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if kind == "sse" else "application/x-ndjson")
        sized = kind == "sized"
        now = time.time()  # "sent" has a fixed width (%.3f of the time), so the length is known ahead
        done = b"data: [DONE]\n\n"
        if sized:
            self.send_header("Content-Length", str(sum(len(event(i, now)) for i in range(chunks)) + len(done)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(chunks):
            self.chunk(event(i, time.time()), sized)
            time.sleep(gap)
        self.chunk(done, sized)
        if not sized:
            self.chunk(b"", sized)

    def chunk(self, data: bytes, sized: bool) -> None:
        self.wfile.write(data if sized else b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def websocket(self) -> None:
        """An echo: each text frame comes back prefixed with the request's X-Request-Id."""
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        request_id = self.headers.get("X-Request-Id") or ""
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(self.rfile.read(2), "big")
            elif length == 127:
                length = int.from_bytes(self.rfile.read(8), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:  # close
                self.wfile.write(b"\x88\x00")
                return
            reply = f"{request_id} {os.uname().nodename} {data.decode()}".encode()
            self.wfile.write(bytes([0x81, len(reply)]) + reply)  # replies stay under 126 bytes
            self.wfile.flush()


port = int(os.environ.get("PORT", "8000"))
print(f"streamer: listening on {port}", flush=True)
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
