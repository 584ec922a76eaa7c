"""Native log lines on stderr: what MediaPipe and LiteRT print from C++ (absl/glog lines, LiteRT's
INFO and WARNING lines), which no environment variable turns off. Hidden while a detector starts or
closes, and filtered out of the CLI's stderr. Set FER_NATIVE_LOGS=1 to see everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

#: Set FER_NATIVE_LOGS=1 to see MediaPipe/LiteRT's own stderr lines (hidden by default).
_SHOW_NATIVE_LOGS = os.environ.get("FER_NATIVE_LOGS") == "1"


@contextlib.contextmanager
def _stderr_to(fd: int) -> Iterator[int | None]:
    """Point file descriptor 2 at ``fd`` (taking ownership of ``fd``) for the duration.

    Yields the original stderr's descriptor (valid inside the block only), or None where fd 2 is
    left alone: FER_NATIVE_LOGS=1, or no real fd 2 (embedded interpreters, some test runners).
    """
    if _SHOW_NATIVE_LOGS:
        os.close(fd)
        yield None
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        os.close(fd)
        yield None
        return
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield saved
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what native code writes to file descriptor 2 (LiteRT's INFO/WARNING lines, which no
    environment variable turns off) while a detector starts or closes."""
    with _stderr_to(os.open(os.devnull, os.O_WRONLY)):
        yield


# Lines native code writes: absl/glog ("W0000 00:00:…", "WARNING: Logging before InitGoogle()")
# and LiteRT ("INFO: [file.cc:12] …", "INFO: Created TensorFlow Lite …", "WARNING: [model_load.cc…").
_NATIVE_LOG_LINE = re.compile(rb"^([IWEF]\d{4} \d\d:\d\d:\d\d|(INFO|WARNING|ERROR): (\[|Created TensorFlow|Logging before))")


@contextlib.contextmanager
def native_logs_filtered() -> Iterator[None]:
    """Drop MediaPipe/LiteRT's native log lines from stderr for the duration, pass everything else.

    LiteRT warns (once per process, at an unpredictable first frame) about tensor alignment inside
    MediaPipe's own preprocessing; no option turns it off. The CLI runs under this filter so a
    user sees only our own messages. Set FER_NATIVE_LOGS=1 to see everything.
    """
    read_end, write_end = os.pipe()
    pumps: list[threading.Thread] = []
    try:
        with _stderr_to(write_end) as original:
            if original is None:
                os.close(read_end)
                yield
                return
            # The pump gets its own copy of the original stderr, valid after the block ends.
            pump = threading.Thread(target=_forward_non_native, args=(read_end, os.dup(original)),
                                    name="fer-stderr-filter", daemon=True)
            pumps.append(pump)
            pump.start()
            yield
    finally:
        # Leaving the block restored fd 2, closing the pipe's last write end: the pump sees EOF.
        for pump in pumps:
            pump.join(timeout=5)


def _forward_non_native(read_fd: int, sink_fd: int) -> None:
    """Copy lines from ``read_fd`` to ``sink_fd``, dropping native log lines; closes both at EOF."""
    with os.fdopen(read_fd, "rb") as source, os.fdopen(sink_fd, "wb", buffering=0) as sink:
        for line in source:
            if not _NATIVE_LOG_LINE.match(line):
                sink.write(line)
