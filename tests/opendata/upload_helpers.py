"""Uploads the way a streaming client sends them, for the upload limits' tests."""

from __future__ import annotations

import re
import select
import socket


def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def chunked_upload(live, client, path: str, total: int, filename: str) -> tuple[int | None, int]:
    """POST a multipart file of `total` bytes in chunks without a Content-Length (as a client streaming a file
    it has not measured sends it), watching for the answer between chunks: its status (None if none came
    before the whole body was sent) and how many bytes had been sent when it came."""
    token = csrf(client, path if "/upload" not in path else path.removesuffix("/upload"))
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nX-CSRF-Token: {token}\r\nCookie: {cookies}\r\n\r\n"
    )
    preamble = f'--b\r\ncontent-disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'.encode()
    chunk = b"x" * (256 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", live.port), timeout=60) as sock:
        sock.sendall(head.encode() + f"{len(preamble):x}\r\n".encode() + preamble + b"\r\n")
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                answer = sock.recv(4096)
                return int(answer.split(b" ", 2)[1]), sent
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
    return None, sent
