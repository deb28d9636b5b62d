"""Files written whole or not at all: into a temporary file in the same folder, then renamed
over the target (atomic on POSIX), so a reader, a crash or Ctrl-C never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; when the block ends without an error the file
    written there replaces `path` (readable by all, as a plain open() would make it), else it
    is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path, payload, indent: int = 1) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=indent, default=str) + "\n")


def atomic_write_image(path, image) -> Path:
    """An image file (its format from the suffix, as cv2.imwrite reads it) written whole or not
    at all; OSError when OpenCV cannot write it."""
    import cv2
    path = Path(path)
    with replacing(path) as tmp:
        encoded = tmp.with_name(tmp.name + path.suffix)  # imwrite picks the format from the name
        try:
            try:
                written = cv2.imwrite(str(encoded), image)
            except cv2.error as err:  # an empty or unsupported image
                raise OSError(f"cannot write {path}: {str(err).strip().splitlines()[-1]}") from None
            if not written:
                raise OSError(f"cannot write {path}")
            encoded.replace(tmp)
        finally:
            encoded.unlink(missing_ok=True)
    return path
