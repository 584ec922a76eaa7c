"""The bad-input corpus: every kind of file or array a careless or hostile user may hand us, made in
the test from the shipped assets (nothing is committed as a file).

Each `BadInput` says what the library must do with it: refuse it with a one-line message holding
``reason``, or read it and find between ``faces[0]`` and ``faces[1]`` faces. The same corpus goes
through the Python API, the CLI and the app's HTTP API (tests/test_reliability.py and
tests/test_app_reliability.py).
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer.limits import (
    DEFAULT_MAX_FACES,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    MAX_VIDEO_SECONDS,
    MAX_ZIP_ENTRIES,
    MAX_ZIP_UNPACKED_BYTES,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"

#: The astronaut's face box as the short-range detector finds it (x0, y0, x1, y1), used to place
#: faces at a border and to cut face tiles.
ASTRONAUT_BOX = (177, 82, 272, 177)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class BadInput:
    """One corpus entry; its bytes are made on first use (so collecting tests costs nothing).

    Attributes:
        name: unique id, also the file's stem.
        suffix: the extension a user's file would carry (``.png``, ``.mp4``, ``.zip`` …).
        make: returns the file's bytes.
        expect: ``"error"`` (refused with a one-line message) or ``"ok"`` (read; faces counted).
        reason: for errors, a phrase the message must contain.
        faces: for ``"ok"``, the inclusive range of faces the default pipeline may find.
        label: for ``"ok"`` with a face, the expression the shipped model must give the largest face
            (the astronaut smiles: a wrong label means the pixels were decoded wrongly).
        file_only: the reason only applies to files on disk (e.g. the upload-size limit), not to the
            same bytes handed over in memory.
    """

    name: str
    suffix: str
    make: Callable[[], bytes] = field(repr=False)
    expect: str
    reason: str = ""
    faces: tuple[int, int] = (0, 0)
    label: str | None = None
    file_only: bool = False

    @functools.cached_property
    def data(self) -> bytes:
        """The file's bytes."""
        return self.make()

    @property
    def filename(self) -> str:
        return self.name + self.suffix

    def write(self, folder: Path) -> Path:
        """Save the entry as ``folder/NAME.SUFFIX``; returns the path."""
        path = folder / self.filename
        path.write_bytes(self.data)
        return path


def _error(name: str, suffix: str, make: Callable[[], bytes], reason: str, *, file_only: bool = False) -> BadInput:
    return BadInput(name, suffix, make, "error", reason=reason, file_only=file_only)


def _ok(name: str, suffix: str, make: Callable[[], bytes], faces: tuple[int, int], label: str | None = None) -> BadInput:
    return BadInput(name, suffix, make, "ok", faces=faces, label=label)


# --------------------------------------------------------------------------- sources


@functools.cache
def astronaut() -> Image.Image:
    """scikit-image's astronaut (public domain), 512×512 RGB, one face."""
    with Image.open(ASSETS / "astronaut.png") as img:
        return img.convert("RGB")


@functools.cache
def coffee() -> Image.Image:
    """scikit-image's coffee cup (public domain), RGB, no face."""
    with Image.open(ASSETS / "coffee.png") as img:
        return img.convert("RGB")


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    """``img`` encoded as ``fmt`` (a Pillow format name)."""
    if fmt == "PNG":
        kwargs.setdefault("compress_level", 1)  # the corpus is rebuilt every run: favour speed
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid 1-bit PNG of ``width × height`` black pixels, about 1000 times smaller than
    its pixels (a few hundred megapixels fit in ~100 KB).

    Built fast: a deflate block ended by a full flush does not refer back past itself, so the
    compressed bytes of one band of zero rows can be repeated for every band.
    """
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    rows_per_band = max(1, (1 << 22) // len(row))
    bands, rest = divmod(height, rows_per_band)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: we write the zlib wrapper ourselves
    band = comp.compress(row * rows_per_band) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(row * rest) + comp.flush()
    adler = 1
    for _ in range(bands):
        adler = zlib.adler32(row * rows_per_band, adler)
    adler = zlib.adler32(row * rest, adler)
    idat = b"\x78\xda" + band * bands + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to declare ``width × height``."""
    data = bytearray(encode(Image.new("RGB", (64, 64), (90, 90, 90)), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """A small real GIF whose screen and image descriptors are patched to declare ``width × height``."""
    data = bytearray(encode(Image.new("P", (16, 16), 0), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    desc = data.index(b"\x2c", 13)  # image separator after the header and colour table
    data[desc + 5:desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def png_text_bomb(megabytes: int = 8) -> bytes:
    """A 1×1 PNG carrying a compressed text chunk (zTXt) that inflates to ``megabytes`` MB."""
    ztxt = b"Comment\x00\x00" + zlib.compress(bytes(megabytes << 20), 9)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x80")
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"zTXt", ztxt)
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def face_tile(side: int) -> np.ndarray:
    """The astronaut's face with some context, ``(side, side, 3)`` uint8 RGB."""
    x0, y0, x1, y1 = ASTRONAUT_BOX
    cx, cy, half = (x0 + x1) // 2, (y0 + y1) // 2, int(1.2 * max(x1 - x0, y1 - y0))
    patch = np.asarray(astronaut())[max(0, cy - half):cy + half, cx - half:cx + half]
    return cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)


def crowd(count: int = 30, cols: int = 6, side: int = 160) -> np.ndarray:
    """``count`` copies of the astronaut's face in a grid on mid grey: ``(H, W, 3)`` uint8 RGB."""
    rows = -(-count // cols)
    step = side + side // 2
    canvas = np.full((rows * step, cols * step, 3), 128, np.uint8)
    tile = face_tile(side)
    for i in range(count):
        r, c = divmod(i, cols)
        canvas[r * step:r * step + side, c * step:c * step + side] = tile
    return canvas


def _exif_rotated() -> bytes:
    """The astronaut stored sideways, tagged EXIF orientation 6 ("rotate 90° clockwise to show")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(astronaut().transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=92)


def _bad_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 99  # no such orientation
    return encode(astronaut(), "JPEG", exif=exif, quality=92)


def _animated(fmt: str) -> bytes:
    frames = [astronaut(), coffee().resize((512, 512))]
    if fmt == "GIF":  # Pillow's default quantiser is slow; the fast one is good enough for a face
        frames = [f.quantize(256, method=Image.Quantize.FASTOCTREE) for f in frames]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=200, loop=0)


def _heic_header() -> bytes:
    """The start of an HEIC file (an ISO-BMFF ``ftyp`` box of brand ``heic``): Pillow has no HEIC
    decoder, so this is what an iPhone photo looks like to us."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    box = struct.pack(">I", 8 + len(ftyp)) + ftyp
    meta = struct.pack(">I", 40) + b"meta" + bytes(32)
    return box + meta + bytes(2000)


def _float_tiff_nan_inf() -> bytes:
    arr = np.asarray(astronaut().convert("L"), np.float32) / 255.0
    arr[:40] = np.nan
    arr[-40:] = np.inf
    arr[:, :20] = -np.inf
    return encode(Image.fromarray(arr, mode="F"), "TIFF")


def _bad_png_crc() -> bytes:
    data = bytearray((ASSETS / "astronaut.png").read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 200] ^= 0xFF  # corrupts the compressed pixels; the chunk CRC no longer matches
    return bytes(data)


def _face_at_border() -> Image.Image:
    x0, _, x1, _ = ASTRONAUT_BOX
    return astronaut().crop((x0 + int(0.3 * (x1 - x0)), 0, 512, 512))


def _tiny_face() -> Image.Image:
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(astronaut().resize((128, 128), Image.Resampling.LANCZOS), (20, 20))
    return canvas


def _texture(width: int, height: int, seed: int) -> bytes:
    """A PNG of smooth colour waves (no face), ``width × height``."""
    rng = np.random.default_rng(seed)
    x = np.arange(width, dtype=np.float32)[None, :, None] / rng.uniform(15, 150, 3)
    y = np.arange(height, dtype=np.float32)[:, None, None] / rng.uniform(15, 150, 3)
    img = (np.sin(x) + np.cos(y)) * 60 + 128
    return encode(Image.fromarray(img.astype(np.uint8)), "PNG")


# --------------------------------------------------------------------------- image corpus


@functools.cache
def _astronaut_png() -> bytes:
    return (ASSETS / "astronaut.png").read_bytes()


@functools.cache
def _astronaut_jpeg() -> bytes:
    return encode(astronaut(), "JPEG", quality=90)


def _rgba() -> Image.Image:
    """The astronaut with an alpha gradient (transparent at the top, opaque from a quarter down)."""
    rgba = astronaut().convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size).point(lambda v: 255 if v > 60 else v * 4))
    return rgba


def _16bit_grey() -> bytes:
    return encode(Image.fromarray(np.asarray(astronaut().convert("L"), np.uint16) * 257), "PNG")


def _48bit_rgb() -> bytes:
    bgr16 = cv2.cvtColor(np.asarray(astronaut()), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    return cv2.imencode(".png", bgr16)[1].tobytes()


def _palette(**kwargs: object) -> bytes:
    return encode(astronaut().quantize(256, method=Image.Quantize.FASTOCTREE), "PNG", **kwargs)


def _padded_past_upload_limit() -> bytes:
    png = _astronaut_png()
    return png + bytes(MAX_UPLOAD_BYTES + 1 - len(png))


def image_cases() -> tuple[BadInput, ...]:
    """Image files: unreadable ones that must be refused, odd but valid ones that must be read."""
    one, none, happy = (1, 1), (0, 0), "happy"
    astro = astronaut
    return (
        # ---- refused
        _error("empty", ".png", lambda: b"", "empty"),
        _error("text-as-jpeg", ".jpg", lambda: b"Dear user, this is a text file with an image extension.\n" * 20,
               "unsupported image format"),
        _error("text-as-png", ".png", lambda: b"just some text\n", "unsupported image format"),
        _error("html-as-gif", ".gif", lambda: b"<!doctype html><html><body>hello</body></html>", "unsupported image format"),
        _error("svg-as-png", ".png", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
               "unsupported image format"),
        _error("pdf-as-jpeg", ".jpg", lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "unsupported image format"),
        _error("heic", ".heic", _heic_header, "unsupported image format"),
        # Formats Pillow reads but fer does not (PostScript would reach Ghostscript), under any name.
        _error("eps-as-jpeg", ".jpg", _eps, "unsupported image format"),
        _error("eps-binary-header", ".jpg", lambda: b"\xc5\xd0\xd3\xc6" + bytes(26) + _eps(), "unsupported image format"),
        _error("ico", ".ico", lambda: encode(astro(), "ICO"), "unsupported image format"),
        _error("tga-as-png", ".png", lambda: encode(astro(), "TGA"), "unsupported image format"),
        _error("ppm", ".ppm", lambda: encode(astro(), "PPM"), "unsupported image format"),
        _error("png-signature-only", ".png", lambda: PNG_SIGNATURE, "unsupported image format"),
        _error("truncated-png-head", ".png", lambda: _astronaut_png()[:3000], "corrupt or truncated"),
        _error("truncated-png-half", ".png", lambda: _astronaut_png()[: len(_astronaut_png()) // 2], "corrupt or truncated"),
        _error("truncated-jpeg-half", ".jpg", lambda: _astronaut_jpeg()[: len(_astronaut_jpeg()) // 2],
               "corrupt or truncated"),
        _error("jpeg-header-only", ".jpg", lambda: _astronaut_jpeg()[:400], "corrupt or truncated"),
        _error("png-bad-crc", ".png", _bad_png_crc, "corrupt or truncated"),
        _error("png-text-bomb", ".png", png_text_bomb, "corrupt or truncated"),
        _error("bomb-png-900mp", ".png", lambda: png_bomb(30000, 30000), "MP limit"),
        _error("bomb-png-just-over", ".png", lambda: png_bomb(8000, MAX_PIXELS // 8000 + 1), "MP limit"),
        _error("bomb-jpeg-3600mp", ".jpg", jpeg_bomb, "MP limit"),
        _error("bomb-gif-4300mp", ".gif", gif_bomb, "MP limit"),
        # A real image padded past the upload limit: refused by size before it is read.
        _error("over-upload-limit", ".png", _padded_past_upload_limit, "MB limit", file_only=True),
        # ---- odd but valid: read, faces counted
        _ok("one-pixel", ".png", lambda: encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), none),
        _ok("one-pixel-rgba", ".png", lambda: encode(Image.new("RGBA", (1, 1), (0, 0, 0, 0)), "PNG"), none),
        _ok("one-pixel-jpeg", ".jpg", lambda: encode(Image.new("L", (1, 1), 30), "JPEG"), none),
        _ok("grey-16bit", ".png", _16bit_grey, one, happy),
        _ok("rgb-48bit", ".png", _48bit_rgb, one, happy),
        _ok("cmyk", ".jpg", lambda: encode(astro().convert("CMYK"), "JPEG", quality=92), one, happy),
        _ok("palette", ".png", _palette, one, happy),
        _ok("palette-transparent", ".png", lambda: _palette(transparency=0), one, happy),
        _ok("rgba", ".png", lambda: encode(_rgba(), "PNG"), one, happy),
        _ok("grey-alpha", ".png", lambda: encode(_rgba().convert("LA"), "PNG"), one, happy),
        _ok("grey-jpeg", ".jpg", lambda: encode(astro().convert("L"), "JPEG", quality=92), one, happy),
        _ok("bilevel", ".png", lambda: encode(astro().convert("1"), "PNG"), (0, 1)),
        _ok("float-tiff-nan-inf", ".tiff", _float_tiff_nan_inf, (0, 1)),
        _ok("exif-rotated", ".jpg", _exif_rotated, one, happy),
        _ok("exif-bad-orientation", ".jpg", _bad_exif, one, happy),
        _ok("progressive", ".jpg", lambda: encode(astro(), "JPEG", quality=90, progressive=True), one, happy),
        _ok("jpeg-trailing-garbage", ".jpg", lambda: _astronaut_jpeg() + b"\x00garbage after the image" * 100, one, happy),
        _ok("animated-gif", ".gif", lambda: _animated("GIF"), one, happy),
        _ok("animated-webp", ".webp", lambda: _animated("WEBP"), one, happy),
        _ok("webp", ".webp", lambda: encode(astro(), "WEBP", quality=90), one, happy),
        _ok("avif", ".avif", lambda: encode(astro(), "AVIF", quality=70, speed=10), one, happy),
        _ok("bmp", ".bmp", lambda: encode(astro(), "BMP"), one, happy),
        _ok("tiff", ".tiff", lambda: encode(astro(), "TIFF", compression="tiff_lzw"), one, happy),
        _ok("wide-4000x1", ".png", lambda: _texture(4000, 1, 1), none),
        _ok("tall-1x4000", ".png", lambda: _texture(1, 4000, 2), none),
        _ok("strip-20000x100", ".png", lambda: _texture(20000, 100, 3), none),
        _ok("strip-100x20000", ".png", lambda: _texture(100, 20000, 4), none),
        _ok("no-face", ".png", lambda: (ASSETS / "coffee.png").read_bytes(), none),
        _ok("black", ".png", lambda: encode(Image.new("RGB", (640, 480)), "PNG"), none),
        _ok("waves", ".png", lambda: _texture(640, 480, 5), none),
        _ok("thirty-faces", ".jpg", lambda: encode(Image.fromarray(crowd(30)), "JPEG", quality=90), (0, DEFAULT_MAX_FACES)),
        _ok("face-at-border", ".png", lambda: encode(_face_at_border(), "PNG"), one, happy),
        _ok("tiny-face", ".png", lambda: encode(_tiny_face(), "PNG"), (0, 1)),
    )


# --------------------------------------------------------------------------- arrays (Python API only)


def array_cases() -> list[tuple[str, object, str | None]]:
    """``(name, array, reason)``: arrays handed to the Python API. ``reason`` None means the array is
    valid (odd memory layout) and must be read like any other."""
    face = np.asarray(astronaut())
    nan = face.astype(np.float32)
    nan[::7] = np.nan
    inf = face.astype(np.float64)
    inf[:, ::5] = np.inf
    readonly = face.copy()
    readonly.flags.writeable = False
    return [
        ("float32", face.astype(np.float32), "uint8"),
        ("float32-scaled-0-1", face.astype(np.float32) / 255, "uint8"),
        ("float-nan", nan, "uint8"),
        ("float-inf", inf, "uint8"),
        ("all-nan", np.full((64, 64, 3), np.nan), "uint8"),
        ("int16", face.astype(np.int16) - 128, "uint8"),
        ("uint16", face.astype(np.uint16) * 257, "uint8"),
        ("int64", face.astype(np.int64), "uint8"),
        ("bool", face > 128, "uint8"),
        ("complex", face.astype(np.complex64), "uint8"),
        ("object", np.array([[None, "x"], [1, 2.0]], dtype=object), "uint8"),
        ("two-channels", face[..., :2], "shape"),
        ("five-channels", np.concatenate([face, face[..., :2]], axis=2), "shape"),
        ("batch-4d", face[None], "shape"),
        ("vector-1d", face.ravel(), "shape"),
        ("scalar-0d", np.array(7, np.uint8), "shape"),
        ("zero-height", face[:0], "no pixels"),
        ("zero-width", face[:, :0], "no pixels"),
        ("over-pixel-limit", np.broadcast_to(np.uint8(0), (MAX_PIXELS // 1000 + 1, 1000)), "MP limit"),
        # Which value masked pixels take is the caller's choice: refused, not silently unmasked.
        ("masked-array", np.ma.masked_array(face, mask=np.zeros(face.shape, bool)), "masked array"),
        # Valid arrays in unusual layouts: read as the plain image.
        ("fortran-order", np.asfortranarray(face), None),
        ("negative-strides", face[::-1, ::-1][::-1, ::-1], None),
        ("read-only", readonly, None),
        ("rgba", np.dstack([face, np.full(face.shape[:2], 255, np.uint8)]), None),
        ("grey-2d", np.asarray(astronaut().convert("L")), None),
        ("grey-hw1", np.asarray(astronaut().convert("L"))[..., None], None),
        # Array subclasses are read as their plain data (np.matrix once crashed the process).
        ("np-matrix", _matrix(np.asarray(astronaut().convert("L"))), None),
    ]


def _matrix(array: np.ndarray) -> np.ndarray:
    """``array`` as an ``np.matrix`` (NumPy warns that the subclass is not recommended: we know)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(array)


def pil_cases() -> list[tuple[str, object, str]]:
    """``(name, PIL image, reason)``: PIL images handed to the Python API that Pillow cannot turn into
    pixels; each must be a one-line `fer.InputError` naming ``reason``."""
    data = encode(astronaut(), "PNG")
    return [
        ("pil-truncated", lambda: Image.open(io.BytesIO(data[: len(data) // 2])), "truncated"),
        ("pil-mode-La", lambda: Image.new("La", (64, 64)), "image mode 'La' cannot be turned into RGB"),
        # Opened by the caller, never decoded by us: decoding would run Ghostscript.
        ("pil-eps", lambda: Image.open(io.BytesIO(_eps())), "unsupported image format"),
    ]


def _eps() -> bytes:
    """A small PostScript picture (Pillow needs Ghostscript, absent here, to decode it)."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
            b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")


# --------------------------------------------------------------------------- videos (app)


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Encode RGB frames as an MPEG-4 part 2 ``.mp4`` (OpenCV's bundled FFmpeg)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def _video_bytes(frames: list[np.ndarray], fps: float, folder: Path, name: str) -> bytes:
    return write_video(folder / f"{name}.mp4", frames, fps).read_bytes()


def video_cases(workdir: Path) -> list[BadInput]:
    """Video uploads: not-videos, a truncated clip, one over the length limit, and a good short clip
    (``workdir`` is scratch space for the encoder)."""
    face = cv2.resize(np.asarray(astronaut()), (256, 256), interpolation=cv2.INTER_AREA)
    good = _video_bytes([face] * 6, 3.0, workdir, "good")
    grey = np.full((32, 32, 3), 90, np.uint8)
    seconds = int(MAX_VIDEO_SECONDS) + 15
    too_long = _video_bytes([grey] * seconds, 1.0, workdir, "too-long")  # 1 fps: tiny file, long clip
    fast_face = cv2.resize(face, (96, 96), interpolation=cv2.INTER_AREA)
    fast = _video_bytes([fast_face] * 4000, 1000.0, workdir, "fast")  # 4 s at 1000 frames/s
    return [
        _error("video-empty", ".mp4", lambda: b"", "video"),
        _error("video-text", ".mp4", lambda: b"this is not a video\n" * 50, "video"),
        _error("video-png-renamed", ".mp4", _astronaut_png, "video"),
        _error("video-truncated", ".mp4", lambda: good[: len(good) // 3], "video"),
        _error("video-too-long", ".mp4", lambda: too_long, "s limit"),
        _ok("video-good", ".mp4", lambda: good, (1, 1), "happy"),
        _ok("video-1000fps", ".mp4", lambda: fast, (0, 1)),
    ]


# --------------------------------------------------------------------------- zips (app Evaluate tab)


def _zip(entries: dict[str, bytes], compresslevel: int = 6) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def zip_bomb(unpacked_bytes: int = MAX_ZIP_UNPACKED_BYTES + (16 << 20)) -> bytes:
    """A zip holding one entry of zeros that unpacks to ``unpacked_bytes`` (over the limit); ~1 MB."""
    buf = io.BytesIO()
    chunk = bytes(1 << 22)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("happy/big.png", "w", force_zip64=True) as fh:
            left = unpacked_bytes
            while left > 0:
                fh.write(chunk[: min(len(chunk), left)])
                left -= len(chunk)
    return buf.getvalue()


def labelled_faces() -> dict[str, bytes]:
    """A tiny folder-per-label set: the astronaut (happy) at a few sizes, and the coffee cup."""
    astro = astronaut()
    return {
        "happy/astronaut.png": encode(astro, "PNG"),
        "happy/astronaut_small.jpg": encode(astro.resize((320, 320)), "JPEG", quality=90),
        "happy/astronaut_flip.jpg": encode(astro.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", quality=90),
        "neutral/coffee.jpg": encode(coffee(), "JPEG", quality=85),
    }


def utf8_flag_on_latin1_name() -> bytes:
    """A zip whose entry name is Latin-1 (``café.png`` as byte 0xE9) while its UTF-8 flag says UTF-8."""
    data = bytearray(_zip({"happy/cafX.png": encode(astronaut(), "PNG")}))
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        struct.pack_into("<H", data, at + flag_at, struct.unpack_from("<H", data, at + flag_at)[0] | 0x800)
    return bytes(data).replace(b"cafX", b"caf\xe9")


def zip_cases() -> list[BadInput]:
    """Evaluate-tab uploads: not-zips, a zip bomb, path traversal, too many entries, entries no file
    system can hold, and good zips (one with a single label folder)."""
    good = labelled_faces()
    traversal = {"../evil.png": good["happy/astronaut.png"], "happy/../../evil2.png": b"x",
                 **good}
    absolute = {"/tmp/fer-evil-absolute.png": b"x", **good}
    many = {f"happy/{i:05d}.png": b"" for i in range(MAX_ZIP_ENTRIES + 1)}
    return [
        _error("zip-empty-file", ".zip", lambda: b"", "zip"),
        _error("zip-text", ".zip", lambda: b"this is not a zip archive\n" * 10, "zip"),
        _error("zip-truncated", ".zip", lambda: _zip(good)[:500], "zip"),
        _error("zip-no-entries", ".zip", lambda: _zip({}), "no images"),
        _error("zip-bomb", ".zip", zip_bomb, "MB limit"),
        _error("zip-too-many-entries", ".zip", lambda: _zip(many, compresslevel=1), "entries"),
        _error("zip-path-traversal", ".zip", lambda: _zip(traversal), "refused entry"),
        _error("zip-absolute-path", ".zip", lambda: _zip(absolute), "refused entry"),
        _error("zip-file-folder-clash", ".zip", lambda: _zip({"happy": b"x", **good}), "clashes"),
        _error("zip-dot-entry", ".zip", lambda: _zip({".": b"x", **good}), "not a file name"),
        _error("zip-long-name", ".zip", lambda: _zip({"happy/" + "a" * 300 + ".png": b"x", **good}), "too long"),
        _error("zip-deep", ".zip", lambda: _zip({"d/" * 2100 + "a.png": b"x", **good}), "deep"),
        _error("zip-utf8-flag-latin1", ".zip", utf8_flag_on_latin1_name, "UTF-8"),
        _ok("zip-good", ".zip", lambda: _zip(good), (0, 0)),
        _ok("zip-single-label", ".zip", lambda: _zip({"happy/a.png": good["happy/astronaut.png"],
                                                       "happy/b.jpg": good["happy/astronaut_small.jpg"]}), (0, 0)),
    ]


# --------------------------------------------------------------------------- network audit (subprocesses)


#: Installed as ``sitecustomize`` in a subprocess: records every attempt to reach a host other than
#: this machine (a DNS lookup or a socket connect) to the file named by FER_NET_AUDIT_LOG, and
#: every program it starts to FER_PROC_AUDIT_LOG (when set).
NET_AUDIT_SITECUSTOMIZE = '''
import ipaddress
import os
import sys

_LOG = os.environ.get("FER_NET_AUDIT_LOG")
_PROC_LOG = os.environ.get("FER_PROC_AUDIT_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%")[0].strip("[]").lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _record(line, log=None):
    with open(log or _LOG, "a", encoding="utf-8") as fh:
        fh.write(line + "\\n")


def _hook(event, args):
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address and not _is_local(address[0]):
            _record(f"connect {address!r}")
    elif event == "socket.getaddrinfo":
        if args[0] is not None and not _is_local(args[0]):
            _record(f"getaddrinfo {args[0]!r}")
    elif _PROC_LOG and event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.system", "os.spawn"):
        _record(f"{event} {str(args[0])[:200]}", _PROC_LOG)


if _LOG:
    sys.addaudithook(_hook)
'''


def net_audit_env(folder: Path, base: dict[str, str]) -> tuple[dict[str, str], Path]:
    """Environment for a subprocess whose outbound network attempts are recorded.

    Writes ``folder/sitecustomize.py`` and puts ``folder`` first on PYTHONPATH; sets
    ``HF_HUB_OFFLINE=1`` (weights are local) and leaves ``GRADIO_ANALYTICS_ENABLED`` unset, so the
    app's own default has to keep analytics off.

    Returns:
        ``(env, log path)``: the log stays absent while nothing tried to go out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(NET_AUDIT_SITECUSTOMIZE)
    log = folder / "network.log"
    env = {k: v for k, v in base.items() if k not in ("GRADIO_ANALYTICS_ENABLED", "FER_HF_REPO")}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), root, *filter(None, [base.get("PYTHONPATH")])])
    env["FER_NET_AUDIT_LOG"] = str(log)
    env["HF_HUB_OFFLINE"] = "1"
    return env, log
