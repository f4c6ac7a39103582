"""Decoding client images safely: base64 or raw bytes in, an RGB or grey uint8 array out."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

import numpy as np
from PIL import Image

from models.common.errors import SHAPE, InputError, InputTooLarge

# Checked on the header, before any pixel is decoded: a 50-kB PNG can claim 100k x 100k pixels.
DEFAULT_MAX_PIXELS = 40_000_000


# Pillow names what it was given: `<_io.BytesIO object at 0x...>` or the file's path on the server.
_PILLOW_NOISE = re.compile(r"\s*(<[^<>]*\bat 0x[0-9a-fA-F]+>|'[^']*[/\\][^']*'|\"[^\"]*[/\\][^\"]*\")")


def pillow_reason(e: Exception) -> str:
    """Why Pillow refused an image, without object reprs or server paths."""
    if isinstance(e, Image.UnidentifiedImageError):
        return "its format is not one Pillow recognises"
    return _PILLOW_NOISE.sub("", str(e)).strip() or type(e).__name__


def b64decode(text: object, field: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise InputError(field, "expected a base64-encoded image string")
    if text.startswith("data:"):  # data URLs from browsers: data:image/png;base64,....
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(field, f"not valid base64 ({e})") from e


def decode_image(data: bytes, field: str, mode: str = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """-> uint8 array [H, W, 3] for mode RGB, [H, W] for mode L."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise InputTooLarge(field, f"image of {w}x{h} pixels is over the limit of {max_pixels} pixels")
            img.load()
    except InputTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputTooLarge(field, f"image is over the decoder's pixel limit ({e})") from e
    except Exception as e:  # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError...)
        raise InputError(field, f"not a decodable image (PNG, JPEG, WebP, ...): {pillow_reason(e)}") from e
    if img.mode != mode:
        img = img.convert(mode)
    return np.asarray(img)


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a uint8 [H, W] or [H, W, C] array to size=(H, W); a no-op at that size."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def decode_input(item: object, index: int, mode: str = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One image input of a request, {"image": "<base64>"} or the bytes of a multipart file, decoded;
    errors name the input (inputs[2].image)."""
    field = f"inputs[{index}].image"
    if isinstance(item, (bytes, bytearray)):  # a multipart upload
        data, field = bytes(item), f"inputs[{index}] (file)"
    elif isinstance(item, dict) and "image" in item:
        data = b64decode(item["image"], field)
    else:
        raise InputError(f"inputs[{index}]", 'expected {"image": "<base64>"}', SHAPE)
    return decode_image(data, field, mode, max_pixels)
