"""Every resource limit of the library, CLI and app, in one place.

The README's "Limits and privacy" section lists these values; change them here only.
"""

from __future__ import annotations

import os

#: Largest image accepted, in pixels (width × height). Bigger images are refused before decoding,
#: which is what stops decompression bombs (a tiny file declaring huge dimensions).
MAX_PIXELS = 40_000_000

#: Largest file accepted by the app's upload widgets and the CLI, in bytes.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024

#: Most faces analysed in one image (the largest are kept).
MAX_FACES = 30

#: Default number of faces analysed per image.
DEFAULT_MAX_FACES = 10

#: Side of the square face crops (and saliency / Grad-CAM maps), in pixels.
MIN_CROP_SIZE = 32
MAX_CROP_SIZE = 1024

#: Longest video accepted, in seconds, and largest video file, in bytes.
MAX_VIDEO_SECONDS = 60.0
MAX_VIDEO_BYTES = 50 * 1024 * 1024

#: Most frames sampled from one video.
MAX_VIDEO_FRAMES = 300

#: Evaluate tab: zip archive limits (entries, bytes once unpacked, bytes of the zip itself).
MAX_ZIP_ENTRIES = 2_000
MAX_ZIP_UNPACKED_BYTES = 300 * 1024 * 1024
MAX_ZIP_BYTES = 100 * 1024 * 1024

#: Pixels a video may make the decoder produce: declared width × height × frame count, checked
#: before decoding (and counted while decoding, for containers that do not declare a count).
#: 60 s of 1080p at 30 frames/s is 3.7 billion; a 33 MP clip at 1000 frames/s is far over.
MAX_VIDEO_DECODE_PIXELS = 4_000_000_000

#: App: wall-clock seconds a long job may run before it stops with a one-line message (a clip,
#: an Evaluate archive); both run one at a time, so this bounds every other visitor's wait too.
MAX_VIDEO_JOB_S = 25.0
MAX_EVALUATE_JOB_S = 120.0

#: App: a webcam frame as the browser sends it: bytes of the encoded picture and its pixels,
#: both checked before it is decoded (the page sends 640×480 JPEGs of about 100 KB).
MAX_FRAME_BYTES = 2 * 1024 * 1024
MAX_FRAME_PIXELS = 3840 * 2160

#: App: bytes of one HTTP request body: an upload (one file at most `MAX_UPLOAD_BYTES`, plus the
#: multipart framing) and every other request (events carry at most one webcam frame inline).
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
MAX_REQUEST_BYTES = 4 * MAX_FRAME_BYTES // 3 + 256 * 1024
#: App: files in one upload request (the app's widgets send one).
MAX_UPLOAD_FILES = 1

#: Requests waiting in the app's queue before new ones are told "busy, try again".
QUEUE_MAX_SIZE = 32

#: App: bytes of uploaded pictures and clips that UI sessions keep in memory, all sessions together
#: (the least recently used go first), and the seconds one is kept after its last use.
SESSION_MEMORY_BYTES = 256 * 1024 * 1024
SESSION_TTL_S = 600

#: App: sessions Gradio keeps state for (each API call is a session of its own): sessions of no
#: browser go first, then the least recently used (`fer.app.owners`). The environment may lower it
#: (FER_STATE_SESSION_CAPACITY): the attack tests do, to fill it quickly.
STATE_SESSION_CAPACITY = int(os.environ.get("FER_STATE_SESSION_CAPACITY", "1000"))

#: App: an upload stays at most this many seconds in Gradio's upload folder, which is swept every
#: `UPLOAD_SWEEP_EVERY_S` seconds (so a file is gone within the sum of the two). The environment
#: may shorten both (FER_UPLOAD_MAX_AGE_S, FER_UPLOAD_SWEEP_EVERY_S): the privacy tests do.
UPLOAD_MAX_AGE_S = int(os.environ.get("FER_UPLOAD_MAX_AGE_S", "300"))
UPLOAD_SWEEP_EVERY_S = int(os.environ.get("FER_UPLOAD_SWEEP_EVERY_S", "60"))
