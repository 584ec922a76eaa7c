"""Image input: every format becomes (H, W, 3) uint8 RGB; bad input is a one-line InputError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fer.errors import InputError
from fer.io import read_image

from .conftest import ASTRONAUT


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rgb() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def test_path_bytes_pil_and_array_agree(rgb):
    from_path = read_image(ASTRONAUT)
    assert from_path.shape == (512, 512, 3) and from_path.dtype == np.uint8
    np.testing.assert_array_equal(read_image(ASTRONAUT.read_bytes()), from_path)
    np.testing.assert_array_equal(read_image(rgb), from_path)
    array = np.asarray(rgb)
    out = read_image(array)
    np.testing.assert_array_equal(out, from_path)
    assert out is not array  # never aliases the caller's buffer


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I"])
def test_modes_become_rgb(rgb, mode):
    img = rgb.convert("L").convert(mode) if mode in ("I;16", "I") else rgb.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I" else "PNG")
    out = read_image(_encode(img, fmt))
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    # Content survives: correlation with the grey original stays high.
    grey = np.asarray(rgb.convert("L"), np.float32).ravel()
    assert np.corrcoef(grey, out.mean(axis=2).ravel())[0, 1] > 0.95


def test_sixteen_bit_uses_full_range():
    ramp = (np.linspace(0, 4095, 64 * 64).reshape(64, 64)).astype(np.uint16)  # 12-bit data in 16 bits
    out = read_image(_encode(Image.fromarray(ramp), "PNG"))
    assert out.min() == 0 and out.max() == 255


def test_rgba_composited_on_white():
    arr = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    assert (read_image(arr) == 255).all()
    assert (read_image(_encode(Image.fromarray(arr), "PNG")) == 255).all()


def test_exif_orientation_applied(rgb):
    rotated = rgb.transpose(Image.Transpose.ROTATE_90)  # stored sideways …
    exif = Image.Exif()
    exif[0x0112] = 6  # … and tagged "rotate 90° clockwise to display"
    out = read_image(_encode(rotated, "JPEG", exif=exif, quality=95))
    diff = np.abs(out.astype(int) - np.asarray(rgb, int)).mean()
    assert diff < 6, diff


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = io.BytesIO()
    frames[0].save(data, format="GIF", save_all=True, append_images=frames[1:])
    out = read_image(data.getvalue())
    assert out.shape == (16, 16, 3) and out[0, 0, 0] > 200 and out[0, 0, 1] < 50


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"hello, I am text", "unsupported image format"),
        (ASTRONAUT.read_bytes()[:3000], "corrupt or truncated"),
    ],
)
def test_bad_bytes_one_line_error(payload, reason):
    with pytest.raises(InputError) as err:
        read_image(payload)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_bad_files_name_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a jpeg")
    for path, reason in ((text, "unsupported image format"), (tmp_path / "missing.png", "no such file"), (tmp_path, "folder")):
        with pytest.raises(InputError, match=reason) as err:
            read_image(path)
        assert str(path) in str(err.value)


def test_decompression_bomb_refused_before_decoding():
    # A 1-bit PNG declaring 30000 x 30000 pixels: a few KB on disk, 900 MP decoded.
    bomb = _encode(Image.new("1", (30000, 30000)), "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(InputError, match="MP limit"):
        read_image(bomb)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.full((8, 8, 3), np.nan), "uint8"),
        (np.zeros((8, 8, 3), bool), "uint8"),
        (np.zeros((8, 8, 5), np.uint8), "shape"),
        (np.zeros((2, 8, 8, 3), np.uint8), "shape"),
        (np.zeros((0, 8, 3), np.uint8), "no pixels"),
    ],
)
def test_bad_arrays(array, match):
    with pytest.raises(InputError, match=match):
        read_image(array)


def test_wrong_type():
    with pytest.raises(InputError, match="expected a path"):
        read_image(12345)  # type: ignore[arg-type]


def test_postscript_never_reaches_an_interpreter(tmp_path):
    """An EPS named like a JPEG is refused by format before any plugin decodes it: no process is
    started (Pillow's EPS plugin would run Ghostscript), and the message names no temporary file."""
    import subprocess
    import sys

    from fer.io import READ_FORMATS

    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
           b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")
    path = tmp_path / "holiday.jpg"
    path.write_bytes(eps)
    started: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.system"):
            started.append(event)

    sys.addaudithook(hook)
    for source in (path, eps, Image.open(io.BytesIO(eps))):
        with pytest.raises(InputError) as err:
            read_image(source)
        assert str(err.value).endswith("unsupported image format (use JPEG, PNG, WEBP, AVIF, BMP, GIF, TIFF)")
    assert not started
    # The CLI says the same in one line and exits 1, no CalledProcessError.
    out = subprocess.run([sys.executable, "-m", "fer", "predict", str(path)], capture_output=True, text=True,
                         timeout=120)
    said = out.stdout + out.stderr
    assert out.returncode == 1 and "unsupported image format" in said
    assert "CalledProcessError" not in said and "Traceback" not in said
    assert len(said.strip().splitlines()) == 1
    assert set(READ_FORMATS) >= {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"}


def test_masked_arrays_are_refused():
    face = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(InputError, match="masked array"):
        read_image(np.ma.masked_array(face, mask=np.zeros(face.shape, bool)))
