"""Tiny generated data that a small model learns in a few epochs. Image classification: class k is a
bright square in corner k of a dark noisy image, as npz bytes or PNG files in a zip/tar archive.
Translation: a toy language pair (toy_pairs)."""

from __future__ import annotations

import io
import random

import numpy as np

from app.examples import CORNERS as LABELS
from app.examples import corner_images, png, zipped
from models.captioning.synthetic import pack


def images(n: int, size: int = 16, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """x uint8 [n, size, size], y int64 [n]: the example images of `dlserve examples write`."""
    return corner_images(n, size, seed, classes)


def npz_bytes(n: int = 200, size: int = 16, seed: int = 0, **extra: np.ndarray) -> bytes:
    x, y = images(n, size, seed)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y, **extra)
    return buf.getvalue()


def imagefolder_zip(n: int = 40, size: int = 16, seed: int = 0, prefix: str = "") -> bytes:
    x, y = images(n, size, seed)
    return stored_zip({f"{prefix}{LABELS[k]}/{i}.png": png(img) for i, (img, k) in enumerate(zip(x, y, strict=True))})


def tar_gz(members: dict[str, bytes]) -> bytes:
    return pack(members, "tar.gz")


def zip_of(members: dict[str, bytes]) -> bytes:
    """ZIP_DEFLATED, as `dlserve examples write` packs its archives."""
    return zipped(members)


def stored_zip(members: dict[str, bytes]) -> bytes:
    """ZIP_STORED (what zipfile writes by default): the bytes of each member stand in the archive as they are."""
    return pack(members, "zip")


def toy_pairs(n: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """A toy language: each word wK of the source becomes vK in the target, in the same order."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(12) for _ in range(rng.randint(2, 5))]
        out.append((" ".join(f"w{i}" for i in ids), " ".join(f"v{i}" for i in ids)))
    return out
