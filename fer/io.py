"""Image input: whatever a user hands us becomes one ``(H, W, 3)`` uint8 RGB array, or a one-line
`InputError` naming the input and the reason; and the way back, pixels to encoded bytes in memory."""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer.errors import InputError
from fer.limits import MAX_PIXELS, MAX_UPLOAD_BYTES

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray

#: The picture formats read (Pillow's names), for the library, the CLI and the app alike. Pillow
#: would otherwise pick any of its plugins by the bytes, some of which hand the file to an outside
#: interpreter (EPS/PS/PDF to Ghostscript) or parse rarely used containers; these are what cameras,
#: phones and browsers produce. MPO is how phones store JPEGs (a JPEG with extra views): Pillow's
#: JPEG plugin opens it.
READ_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "BMP", "GIF", "TIFF")
_READ_AS = frozenset(READ_FORMATS) | {"MPO"}
#: What an image of any other format is told (one line, the same for every format).
UNSUPPORTED = "unsupported image format (use " + ", ".join(READ_FORMATS) + ")"

def describe(source: ImageSource) -> str:
    """A short name for ``source`` to put in messages: the path, or the kind of object."""
    if isinstance(source, (str, os.PathLike)):
        return "".join(c if c.isprintable() else "?" for c in str(source))
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


def read_image(source: ImageSource, max_pixels: int = MAX_PIXELS, *, name: str | None = None) -> np.ndarray:
    """Read an image into RGB pixels.

    Accepts a path, encoded bytes (one of `READ_FORMATS`, whatever the file is named), a PIL image
    or an array. EXIF orientation is applied; grey,
    palette, RGBA/LA (composited on white), 16-bit and CMYK images become RGB; an animated image
    gives its first frame.

    Args:
        source: path / bytes / PIL image, or a uint8 array ``(H, W)``, ``(H, W, 3)`` RGB or
            ``(H, W, 4)`` RGBA (a masked array is refused: which value its masked pixels should
            take is the caller's choice, e.g. ``arr.filled(0)``).
        max_pixels: images with more pixels are refused before they are decoded.
        name: what to call the image in messages (default: the path, or the kind of object).
    Returns:
        ``(H, W, 3)`` uint8 RGB, C-contiguous (a new array; the input is never modified).
    Raises:
        InputError: unreadable, truncated, empty, too large, another format than `READ_FORMATS`, an
            image mode that has no RGB conversion, or an array of the wrong shape/dtype.
    """
    name = describe(source) if name is None else name
    if isinstance(source, np.ndarray):
        return _from_array(source, name, max_pixels)
    if isinstance(source, Image.Image):
        return _decoded(lambda: _from_pil(source, name, max_pixels), name, max_pixels)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source), name)
    else:
        raise InputError(f"{name}: expected a path, bytes, PIL image or numpy array")
    if not data:
        raise InputError(f"{name}: the file is empty")

    def decode() -> np.ndarray:
        # Only the listed plugins are tried: any other format is "not identified" (below).
        with Image.open(io.BytesIO(data), formats=READ_FORMATS) as img:
            return _from_pil(img, name, max_pixels)

    return _decoded(decode, name, max_pixels)


def _decoded(decode: Callable[[], np.ndarray], name: str, max_pixels: int) -> np.ndarray:
    """Run ``decode`` (Pillow's work) with every way Pillow fails turned into one `InputError`:
    the one boundary where a picture is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Truncated File Read", reported below as an error instead
            return decode()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image dimensions are over the {max_pixels / 1e6:.0f} MP limit") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: {UNSUPPORTED}") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError, MemoryError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: corrupt or truncated image ({reason[:120]})") from None


_LIMIT_TEXT = f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB limit ({MAX_UPLOAD_BYTES:,} bytes)"


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, with the same checks `read_image` makes before decoding.

    Raises:
        InputError: no such file, a folder or other non-regular file (a FIFO, a device), or over
            the upload size limit.
    """
    return _read_file(Path(path), describe(path))


def _read_file(path: Path, name: str) -> bytes:
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        raise InputError(f"{name}: no such file") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        # /dev/zero would be read until memory runs out, a FIFO would block forever.
        raise InputError(f"{name}: not a regular file")
    if st.st_size > MAX_UPLOAD_BYTES:
        raise InputError(f"{name}: file is {st.st_size:,} bytes, over the {_LIMIT_TEXT}")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_UPLOAD_BYTES + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise InputError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"{name}: file is over the {_LIMIT_TEXT}")
    return data


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"{name}: image has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{name}: image is {width}×{height} = {width * height / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit"
        )


#: The EXIF tag that says how the camera was held (1: upright).
_EXIF_ORIENTATION = 0x0112


def _from_pil(img: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    # A PIL image the caller opened may be of any format; decoding it could run an interpreter.
    if img.format is not None and img.format not in _READ_AS:
        raise InputError(f"{name}: {UNSUPPORTED}")
    # The bomb check, on the header's size before any pixel is decoded; Pillow's own check (its
    # process-wide Image.MAX_IMAGE_PIXELS, left as the process has it) is the second line.
    _check_size(img.width, img.height, name, max_pixels)
    if getattr(img, "is_animated", False):
        img.seek(0)
    # exif_transpose copies the image even when there is nothing to turn: call it only when the EXIF
    # orientation asks for a turn or flip. It reads the header and may decode; the size check ran.
    if img.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1):
        img = ImageOps.exif_transpose(img) or img
    img.load()
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8, order="C")  # one copy, writable: the common case
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit and float images are scaled by their own range (a 12-bit sensor image stored in
        # 16 bits would look black if divided by 65535).
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        grey = np.nan_to_num((arr - lo) * scale).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")  # La / RGBa (premultiplied) have no such conversion: handled below
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    try:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except ValueError as exc:
        if "conversion" not in str(exc):
            raise
        raise InputError(f"{name}: image mode {mode!r} cannot be turned into RGB (convert it first)") from None
    return np.array(rgb, copy=True, order="C")


def _from_array(arr: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    if isinstance(arr, np.ma.MaskedArray):
        # Reading its data would analyse the masked pixels as if they were not; filling them with
        # some value would invent pixels. The caller knows which is meant.
        raise InputError(f"{name}: a masked array; pass arr.filled(value) to say what masked pixels are")
    # A subclass (np.matrix) behaves differently under indexing: read its plain data.
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise InputError(f"{name}: expected a uint8 array, got {arr.dtype} (scale to 0..255 and cast first)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        _check_size(arr.shape[1], arr.shape[0], name, max_pixels)
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"{name}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    _check_size(arr.shape[1], arr.shape[0], name, max_pixels)
    if arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        rgb = arr[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(rgb.round().astype(np.uint8))
    return np.array(arr, copy=True, order="C")


#: Picture formats `encode_image` writes: name → (OpenCV extension, MIME type).
IMAGE_FORMATS = {"jpeg": (".jpg", "image/jpeg"), "png": (".png", "image/png"), "webp": (".webp", "image/webp")}


def encode_image(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """``(H, W, 3)`` uint8 RGB → the bytes of a JPEG, PNG or WebP file, encoded in memory.

    Args:
        fmt: a key of `IMAGE_FORMATS` (``"jpg"`` is read as ``"jpeg"``).
        quality: 1-100 for JPEG and WebP (PNG is lossless).
    """
    fmt = "jpeg" if fmt.lower() == "jpg" else fmt.lower()
    if fmt not in IMAGE_FORMATS:
        raise InputError(f"cannot encode a picture as {fmt!r}; use one of {', '.join(IMAGE_FORMATS)}")
    extension = IMAGE_FORMATS[fmt][0]
    params = {"jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality], "webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(fmt, [])
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError("could not encode the picture")
    return buffer.tobytes()
