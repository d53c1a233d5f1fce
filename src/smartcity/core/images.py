"""Pictures citizens upload, for any module: checked by their content (Pillow, not the file's name or claimed
type), turned upright, re-encoded as JPEG so that no EXIF or other metadata survives (a phone's photo carries
where it was taken), shrunk, and given a thumbnail; then written under the uploads folder in a way that a
rolled-back transaction leaves no file behind.

(reports/photos.py does the same pixel work for reports' photos but keeps its own error codes, messages and
details, which Open311 clients and the report pages already read; see docs/participation.md, "Not done yet".)"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import event
from sqlalchemy.orm import Session

from smartcity.core.errors import InvalidInput, TooLarge
from smartcity.core.i18n import N_

ACCEPTED = ("JPEG", "PNG", "WEBP")
MAX_PIXELS = 50_000_000  # decompression bombs are refused long before Pillow's own limit
MAX_SIDE = 2048
THUMB_SIDE = 320


@dataclass
class CleanImage:
    image: bytes  # JPEG, no metadata
    thumb: bytes
    width: int
    height: int


def clean(data: bytes, name: str, max_bytes: int, field: str = "images") -> CleanImage:
    """One uploaded picture, re-encoded without metadata; TooLarge or InvalidInput naming the file."""
    name = (name or "image")[:100]
    if len(data) > max_bytes:
        raise TooLarge(
            N_("the picture {name} is larger than {limit} bytes"),
            params={"name": name, "limit": max_bytes},
            code="image_too_large",
            details={"field": field, "file": name, "size": len(data), "limit": max_bytes},
        )
    not_image = InvalidInput(
        N_("the file {name} is not a JPEG, PNG or WebP picture"),
        params={"name": name},
        code="not_an_image",
        details={"field": field, "file": name},
    )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ACCEPTED or probe.width * probe.height > MAX_PIXELS:
                raise not_image
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            if upright.mode in ("RGBA", "LA", "P"):
                rgba = upright.convert("RGBA")
                upright = Image.new("RGB", rgba.size, (255, 255, 255))
                upright.paste(rgba, mask=rgba.getchannel("A"))
            else:
                upright = upright.convert("RGB")
            upright.thumbnail((MAX_SIDE, MAX_SIDE))
            # A new image from the pixels alone: nothing of the upload's metadata can ride along.
            bare = Image.new("RGB", upright.size)
            bare.paste(upright)
            out = io.BytesIO()
            bare.save(out, "JPEG", quality=85, optimize=True)
            small = bare.copy()
            small.thumbnail((THUMB_SIDE, THUMB_SIDE))
            thumb = io.BytesIO()
            small.save(thumb, "JPEG", quality=80)
            return CleanImage(out.getvalue(), thumb.getvalue(), bare.width, bare.height)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise not_image from None


class Files:
    """Files written under `root/folder` during one session's transaction, removed if it rolls back."""

    def __init__(self, session: Session, root: Path, folder: str):
        self.root, self.folder = root, folder
        self.written: list[Path] = []
        event.listen(session, "after_rollback", self._remove, once=True)
        event.listen(session, "after_commit", self._keep, once=True)

    def write(self, data: bytes, suffix: str, name: str | None = None) -> str:
        """Write `data`; the path relative to the root, to keep in the store."""
        name = name or uuid.uuid4().hex
        relative = Path(self.folder) / name[:2] / f"{name}{suffix}"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(path.suffix + ".part")
        self.written += [part, path]
        part.write_bytes(data)
        os.replace(part, path)
        return relative.as_posix()

    def _remove(self, _session) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()

    def _keep(self, _session) -> None:
        self.written.clear()


def uploads_root(var_dir: str | Path) -> Path:
    return Path(var_dir) / "uploads"
