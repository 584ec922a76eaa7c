"""Pictures and files as the app sends and receives them: inline ``data:`` URLs both ways, so no
picture the app shows is ever a file on the server, and webcam frames are decoded in memory."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer.errors import InputError
from fer.io import IMAGE_FORMATS, encode_image, read_image
from fer.limits import MAX_FRAME_BYTES, MAX_FRAME_PIXELS


def bytes_url(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,…`` carrying ``data``."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def data_url(image: np.ndarray, quality: int = 80, fmt: str = "jpeg") -> str:
    """``(H, W, 3)`` uint8 RGB → ``data:image/…;base64,…`` (encoded in memory, never on disk)."""
    return bytes_url(encode_image(image, fmt, quality), IMAGE_FORMATS[fmt][1])


def data_url_bytes(url: str) -> bytes:
    """The bytes a ``data:…;base64,…`` URL carries.

    Raises:
        InputError: not a base64 ``data:`` URL.
    """
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise InputError("not a base64 data: URL")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("not valid base64 data") from None


def inline_file(data: bytes, name: str, mime: str) -> dict[str, Any]:
    """A file record that Gradio's file, image and gallery widgets show from ``data`` inline.

    ``path`` is None on purpose: neither Gradio's server nor `gradio_client` then takes the record
    for a file to copy or download (a client gets the bytes in ``url``, see `data_url_bytes`).
    Gradio sends it unchanged only from an event declared with ``postprocess=False``.

    Returns:
        ``{"path": None, "url": "data:<mime>;base64,…", "orig_name", "mime_type", "size",
        "is_stream": False, "meta": {"_type": "gradio.FileData"}}``.
    """
    return {
        "path": None, "url": bytes_url(data, mime), "orig_name": name,
        "mime_type": mime, "size": len(data), "is_stream": False, "meta": {"_type": "gradio.FileData"},
    }


def inline_image(image: np.ndarray, name: str, quality: int = 90) -> dict[str, Any]:
    """``(H, W, 3)`` uint8 RGB as an `inline_file` record, in the format of ``name``'s suffix
    (``.png``, ``.webp``, else JPEG)."""
    fmt = Path(name).suffix.lstrip(".").lower()
    fmt = fmt if fmt in IMAGE_FORMATS else "jpeg"
    return inline_file(encode_image(image, fmt, quality), name, IMAGE_FORMATS[fmt][1])


def image_html(image: np.ndarray | None, alt: str, placeholder: str, elem_class: str = "fer-picture") -> str:
    """A picture as inline HTML (an ``<img>`` with a data URL), or a placeholder box with a line
    of text: the per-face panels, whose titles sit outside the picture."""
    if image is None:
        return f'<div class="{elem_class} fer-empty">{escape(placeholder)}</div>'
    return f'<img class="{elem_class}" src="{data_url(image)}" alt="{escape(alt)}">'


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink ``(H, W, 3)`` uint8 so its longer side is at most ``max_side`` (unchanged if it is);
    the shorter side stays at least 1 pixel, whatever the aspect ratio."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def decode_frame(frame: Any) -> np.ndarray | None:
    """A webcam frame as the browser sends it → ``(H, W, 3)`` uint8 RGB (None: no frame).

    Only pixels travel this way: a ``data:image/…;base64,…`` URL, or Gradio's record carrying one
    in ``url``. A record naming a file (``path``) is refused: the webcam never sends files. The
    frame's size is bounded before it is decoded: at most `fer.limits.MAX_FRAME_BYTES` encoded and
    `fer.limits.MAX_FRAME_PIXELS` pixels (read from its header).

    Raises:
        InputError: a file record, not base64, not an image, truncated, too large.
    """
    if frame is None:
        return None
    if isinstance(frame, Mapping):
        if frame.get("path") is not None:
            raise InputError("webcam frame: expected the camera's pixels, not a file")
        frame = frame.get("url")
        if frame is None:
            return None
    if not isinstance(frame, str) or not frame.startswith("data:"):
        raise InputError("webcam frame: expected a data: URL of a picture")
    # base64 carries 3 bytes in 4 characters: refuse by length before decoding anything.
    if len(frame) > (MAX_FRAME_BYTES * 4) // 3 + 128:
        raise InputError(f"webcam frame: larger than {MAX_FRAME_BYTES // 2**20} MB; send a smaller picture")
    try:
        data = data_url_bytes(frame)
    except InputError:
        raise InputError("webcam frame: not valid base64 image data") from None
    if not data:
        raise InputError("webcam frame: empty")
    return read_image(data, max_pixels=MAX_FRAME_PIXELS, name="webcam frame")


def inline_outputs(outputs: Sequence[Any]) -> Callable[[Callable[..., list[Any]]], Callable[..., list[Any]]]:
    """Send a handler's values as Gradio's postprocessing would, except pictures and files, which
    travel inline instead of as files Gradio writes into its cache (for ``postprocess=False`` events).

    Per output: None and ``gr.skip()`` pass as they are, a ``gr.update`` too (with its ``value``
    wired like a plain value for a picture widget); a ``gr.Image`` takes an ``(H, W, 3)`` uint8 picture, a ``gr.Gallery``
    ``(picture, caption)`` pairs, both encoded in the widget's ``format``; a ``gr.File`` takes an
    `inline_file` record, a ``gr.Video`` too; anything else goes through the widget's own ``postprocess`` (which writes
    no file for the labels, tables and text used).
    """
    import gradio as gr

    def wire(component: Any, value: Any) -> Any:
        if isinstance(value, dict) and value.get("__type__") == "update":
            # An update of a picture widget may carry new pictures: they travel inline like a value.
            # Other widgets' updates pass as they are (their postprocess would check the value
            # against the choices Gradio knows, not the session's).
            if "value" in value and isinstance(component, (gr.Gallery, gr.Image)):
                return {**value, "value": wire(component, value["value"])}
            return value
        if value is None:
            return value
        if isinstance(component, gr.Gallery):
            return [{"image": inline_image(picture, f"{component.elem_id}-{i + 1}.{component.format}"),
                     "caption": caption} for i, (picture, caption) in enumerate(value)]
        if isinstance(component, gr.Image):
            return inline_image(value, f"{component.elem_id}.{component.format}")
        if isinstance(component, (gr.File, gr.Video)):
            return value
        processed = component.postprocess(value)
        return processed.model_dump() if hasattr(processed, "model_dump") else processed

    def decorate(fn: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
            return [wire(c, v) for c, v in zip(outputs, fn(*args, **kwargs), strict=True)]

        return wrapper

    return decorate
