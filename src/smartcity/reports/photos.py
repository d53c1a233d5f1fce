"""Photos of reports: checked by their real content (Pillow, not the file name), re-encoded so that no
EXIF survives (location, camera, owner), shrunk, and given a thumbnail.

Processing happens in memory before anything is stored; files are written only once the report is valid,
and removed again if its transaction rolls back (see `FileBatch`), so a failed report leaves no orphan.
"""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import event
from sqlalchemy.orm import Session

from smartcity.core.errors import InvalidInput, TooLarge

ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 50_000_000  # refuse decompression bombs well before Pillow's own limit
MAX_SIDE = 2048  # stored photos are shrunk to this; plenty for a pothole
THUMB_SIDE = 320


@dataclass
class Upload:
    """A file as received: its claimed name and type are only hints; the content decides."""

    filename: str
    data: bytes
    content_type: str = ""


@dataclass
class ProcessedPhoto:
    image: bytes  # JPEG, no metadata
    thumb: bytes
    width: int
    height: int


def process(upload: Upload, max_bytes: int) -> ProcessedPhoto:
    """Check one upload and re-encode it; raises TooLarge or InvalidInput naming the file."""
    name = (upload.filename or "photo")[:100]
    if len(upload.data) > max_bytes:
        raise TooLarge(
            f"the photo {name!r} is larger than {max_bytes // (1024 * 1024) or max_bytes} "
            f"{'MB' if max_bytes >= 1024 * 1024 else 'bytes'}",
            code="photo_too_large",
            details=[{"field": "photos", "file": name, "size": len(upload.data), "limit": max_bytes}],
        )
    not_image = InvalidInput(
        f"the file {name!r} is not a JPEG, PNG or WebP image",
        code="not_an_image",
        details=[{"field": "photos", "file": name}],
    )
    try:
        with Image.open(io.BytesIO(upload.data)) as probe:
            fmt = probe.format
            if fmt not in ACCEPTED:
                raise not_image
            if probe.width * probe.height > MAX_PIXELS:
                raise TooLarge(f"the photo {name!r} has too many pixels", code="photo_too_large")
            probe.verify()
        with Image.open(io.BytesIO(upload.data)) as img:
            img.load()
            # Turn the picture upright as the camera meant it, then drop every bit of metadata.
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                flat = Image.new("RGB", img.size, (255, 255, 255))
                flat.paste(img, mask=img.getchannel("A"))
                img = flat
            elif img.mode != "RGB":
                img = img.convert("RGB")
            img.thumbnail((MAX_SIDE, MAX_SIDE))
            clean = Image.new("RGB", img.size)
            clean.paste(img)
            out = io.BytesIO()
            clean.save(out, "JPEG", quality=85, optimize=True)
            thumb = clean.copy()
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
            tout = io.BytesIO()
            thumb.save(tout, "JPEG", quality=80)
            return ProcessedPhoto(out.getvalue(), tout.getvalue(), clean.width, clean.height)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise not_image from None


class FileBatch:
    """Files written during one transaction; deleted if the transaction rolls back."""

    def __init__(self, session: Session, root: Path):
        self.root = root
        self.written: list[Path] = []
        event.listen(session, "after_rollback", self._remove, once=True)
        event.listen(session, "after_commit", self._forget, once=True)

    def write(self, data: bytes, suffix: str, name: str | None = None) -> str:
        """Write `data` under the uploads root; returns the path relative to it."""
        name = name or uuid.uuid4().hex
        rel = Path("reports") / name[:2] / f"{name}{suffix}"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        self.written.append(tmp)
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.written.append(path)
        return rel.as_posix()

    def remove(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()

    def _remove(self, _session) -> None:
        self.remove()

    def _forget(self, _session) -> None:
        self.written.clear()


# --- fetching a partner's media_url (only with SMARTCITY_REPORTS_FETCH_MEDIA_URLS) ---------------------------


class FetchRefused(Exception):
    """A media_url that is not fetched, and why (kept as a link all the same)."""


MAX_REDIRECTS = 3


def _public(address: str, allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allow):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


def _resolve(host: str, port: int, allow: list) -> str:
    """The address to connect to: every address the name resolves to must be public (or allowed), so that
    a name cannot smuggle a request to the city's own network; the connection then goes to that address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchRefused(f"the host {host!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    bad = [a for a in addresses if not _public(a, allow)]
    if not addresses or bad:
        raise FetchRefused(f"the host {host!r} is a private, loopback or link-local address ({', '.join(bad)})")
    return addresses[0]


def fetch(url: str, max_bytes: int, *, allow: list | None = None, timeout: float = 10.0) -> Upload:
    """Download the image behind a link: http(s) only, public addresses only (checked after DNS resolution,
    at every redirect), an image/* answer of at most `max_bytes`. Raises FetchRefused saying why."""
    try:
        return _fetch(url, max_bytes, allow or [], timeout)
    except httpx.HTTPError as exc:
        raise FetchRefused(f"the download failed ({type(exc).__name__}: {exc})") from None


def _fetch(url: str, max_bytes: int, allow: list, timeout: float) -> Upload:
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"not an http(s) link: {url[:100]!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _resolve(parts.hostname, port, allow)
        host = f"[{address}]" if ":" in address else address
        pinned = urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))
        headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "image/*"}
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", pinned, headers=headers, extensions=extensions) as response,
        ):
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code != 200:
                raise FetchRefused(f"the link answered HTTP {response.status_code}")
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not kind.startswith("image/"):
                raise FetchRefused(f"the link is not an image ({kind or 'no content type'})")
            if int(response.headers.get("content-length") or 0) > max_bytes:
                raise FetchRefused(f"the image is larger than {max_bytes} bytes")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise FetchRefused(f"the image is larger than {max_bytes} bytes")
            name = parts.path.rsplit("/", 1)[-1] or "media"
            return Upload(name[:100], bytes(data), kind)
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")
