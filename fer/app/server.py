"""The app put together: the page (header, tabs), the events between tabs, and the server's launch
options and background upkeep. ``python app.py`` calls `fer.app.main`, which calls `run`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from fer.app import about, api, evaluate, folders, image, internals, live, owners, settings_tab, video
from fer.app.about import FORGET_SHOWN_EVERY_S
from fer.app.media import inline_outputs
from fer.app.ondevice import OnDeviceFiles
from fer.app.security import Hardening
from fer.app.sessions import MEMORY
from fer.app.settings import Settings, default_settings, describe
from fer.errors import FerError, InputError
from fer.limits import (
    MAX_UPLOAD_BYTES,
    QUEUE_MAX_SIZE,
    STATE_SESSION_CAPACITY,
    UPLOAD_MAX_AGE_S,
    UPLOAD_SWEEP_EVERY_S,
)

log = logging.getLogger("fer.app")

STATIC = Path(__file__).resolve().parent / "static"
#: Events other than the live stream running at once (detection and drawing share the CPU cores).
DEFAULT_CONCURRENCY = 2

HEADER = """\
# Facial expressions and visual saliency
Each face is classified by a CNN; beside the answer: where people typically look, what the CNN sees, where it
looked, a second opinion and how far to trust it (after Mavani et al., ICCV-W 2017).

**A facial expression is not a feeling**: do not use this to judge anyone (*About*).
"""


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an unexpected exception into a short message in the UI (one log line, no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - the user sees one line, the log one line with the cause
            log.warning("handler %s failed: %s: %s", fn.__name__, type(exc).__name__, str(exc).splitlines()[:1])
            log.debug("handler %s traceback", fn.__name__, exc_info=True)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}); please try another input.",
                           print_exception=False) from None

    return wrapper


def build_app(model: str = "mini_xception_fer2013", extra_models: Sequence[str] = ()) -> gr.Blocks:
    """Lay out the app and bind its events. ``model`` is selected at start; ``extra_models`` are
    offered besides the registered models and local ``runs/*/best.json`` checkpoints."""
    defaults = default_settings(model)
    ok, status = describe(defaults)
    if not ok:
        raise SystemExit(status)
    with gr.Blocks(title="fer: facial expressions with visual saliency", analytics_enabled=False,
                   delete_cache=(UPLOAD_SWEEP_EVERY_S, UPLOAD_MAX_AGE_S)) as app:
        settings = gr.State(defaults)
        evaluation = gr.State(None)
        live_state = gr.State(None)
        api.bind(settings, guarded)  # first: /predict must be dependency 0 (see fer.app.api.bind)
        gr.Markdown(HEADER, elem_id="header")
        with gr.Tabs(elem_id="tabs"):
            # Image first: a visitor's first screen is a worked example, analysed on arrival.
            with gr.Tab("Image", id="image", elem_id="tab-image"):
                image_tab = image.build(settings, evaluation, live_state, guarded)
            with gr.Tab("Live", id="live", elem_id="tab-live"):
                live_tab = live.build(settings, evaluation, live_state, guarded)
            with gr.Tab("Video", id="video", elem_id="tab-video"):
                video.build(settings, guarded)
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                evaluate.build(settings, evaluation, guarded)
            with gr.Tab("Settings", id="settings", elem_id="tab-settings"):
                options = settings_tab.build(settings, model, extra_models)
            with gr.Tab("About", id="about", elem_id="tab-about"):
                about_md = about.build(settings)
        _bind_settings(options, settings, evaluation, live_state, about_md, live_tab, image_tab)
        app.load(guarded(inline_outputs(image_tab.outputs)(image.arrival)), [settings, evaluation, live_state],
                 image_tab.outputs, api_visibility="private", postprocess=False, show_progress="hidden")
        app.unload(_forget_session)
    return app


def _forget_session(request: gr.Request) -> None:
    """The tab closed: its pictures and clips leave the server's memory."""
    MEMORY.drop(getattr(request, "session_hash", None))


def _bind_settings(options: settings_tab.SettingsTab, settings: Any, evaluation: Any, live_state: Any,
                   about_md: Any, live_tab: live.LiveTab, image_tab: image.ImageTab) -> None:
    """Settings apply on every change; then the Image tab redoes its picture from memory."""

    @guarded
    def on_change(current: Settings, *values: Any) -> list[Any]:
        new, status, margin = settings_tab.apply(options, current, values)
        if new is current:
            gr.Warning(status.removeprefix("⚠️ "))
            return [current, status, gr.skip(), gr.skip(), gr.skip()]
        posing = gr.skip()
        if settings_tab.labels_of(new) != settings_tab.labels_of(current):
            posing = gr.update(choices=live.posing_choices(settings_tab.labels_of(new)), value=live.NOT_POSING)
        return [new, status, about.about_markdown(new), posing, gr.skip() if margin is None else margin]

    @guarded
    def on_redo(current: Settings, measured: Any, session: Any, request: gr.Request) -> list[Any]:
        values = image.redo(getattr(request, "session_hash", None), current, measured, session)
        return [gr.skip()] * len(image_tab.outputs) if values is None else values

    gr.on([w.input for w in options.widgets], on_change, [settings, *options.widgets],
          [settings, options.status, about_md, live_tab.posing, options.widgets[3]], api_visibility="undocumented",
          api_name="apply_settings", preprocess=False).then(
        inline_outputs(image_tab.outputs)(on_redo), [settings, evaluation, live_state], image_tab.outputs,
        api_visibility="private", api_name="redo_image", postprocess=False, show_progress="hidden")


def launch_options(share: bool = False) -> dict[str, Any]:
    """``gr.Blocks.launch`` arguments: loopback unless GRADIO_SERVER_NAME says otherwise, the upload
    limit, the theme and page extras, and the guards: no run history (Gradio would keep every
    run's pictures in the browser), no monitoring route, bounded session state, hardened HTTP
    (`fer.app.security`), the background upkeep (`upkeep`)."""
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "share": share,
        "max_file_size": MAX_UPLOAD_BYTES,
        "theme": gr.themes.Soft(),
        "css": (STATIC / "app.css").read_text(),
        "head": f"<script>{(STATIC / 'app.js').read_text()}</script>",
        "run_history": False,
        "enable_monitoring": False,
        "footer_links": ["api", "gradio"],
        "state_session_capacity": STATE_SESSION_CAPACITY,
        "show_error": False,
        # OnDeviceFiles: the in-browser engine's runtime and models under /ondevice/ (fer.app.ondevice).
        "app_kwargs": {"middleware": [Middleware(Hardening, public=api.CALLABLE_BY_NAME,
                                                 file_folders=lambda: (str(folders.upload_dir()),)),
                                      Middleware(OnDeviceFiles)],
                       "lifespan": upkeep},
    }


@contextlib.asynccontextmanager
async def upkeep(server: Any) -> AsyncIterator[None]:
    """While the server runs: every `FORGET_SHOWN_EVERY_S` seconds, drop Gradio's per-session
    copies of shown pictures and expire session memory; every `UPLOAD_SWEEP_EVERY_S` seconds,
    remove uploads and torn-upload files older than `UPLOAD_MAX_AGE_S` (`fer.app.folders.sweep_uploads`;
    in worker threads: the event loop keeps serving the live streams)."""
    import anyio

    uploads = folders.upload_dir()
    tick = min(FORGET_SHOWN_EVERY_S, UPLOAD_SWEEP_EVERY_S)
    internals.evict_anonymous_first(server.state_holder, owners.OWNERS.anonymous)

    async def loop() -> None:
        last_forget = last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            try:
                if now - last_forget >= FORGET_SHOWN_EVERY_S - 1e-3:
                    last_forget = now
                    await anyio.to_thread.run_sync(internals.forget_shown, server.state_holder)
                    MEMORY.expire()
                if now - last_sweep >= UPLOAD_SWEEP_EVERY_S - 1e-3:
                    last_sweep = now
                    keep = internals.kept_in_cache(server.get_blocks())
                    await anyio.to_thread.run_sync(folders.sweep_uploads, uploads, UPLOAD_MAX_AGE_S, keep)
            except Exception as exc:  # noqa: BLE001 - say so once, keep serving
                log.warning("background upkeep stopped: %s: %s", type(exc).__name__, exc)
                return

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Facial expression recognition demo (Gradio).")
    parser.add_argument("--model", default="default",
                        help="registered model name or checkpoint (.json/.safetensors/folder) (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> None:
    """Build and launch the app (`fer.app.folders.prepare` has run)."""
    from fer.models import ALIASES, PRETRAINED

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    internals.check_version()
    internals.one_line_errors()
    model = ALIASES.get(args.model, args.model)
    try:
        app = build_app(model, [] if model in PRETRAINED else [model])
    except FerError as exc:
        sys.exit(f"error: {exc}")
    # api_open=False: the queue-less /run/* routes refuse every queued event (all of them are), so
    # the queue's size and concurrency limits bound all the work (fer.app.security refuses them too).
    app.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY, api_open=False)
    # SIGTERM (a container or service stopping) takes the same way out as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app.launch(**launch_options(args.share))
    finally:
        with contextlib.suppress(Exception):
            internals.empty_cache(app)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
