"""Gradio demo: live webcam, images, video and evaluation of facial expressions with visual saliency.

    python app.py                     # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)
    python app.py --model runs/x/best.json --share

The app lives in `fer.app`; this file is its entry point, and runs unchanged as a Hugging Face Space.
"""

import os

# Before Gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")
# FFmpeg (inside OpenCV) prints every decoding error of a damaged clip to stderr, dozens of lines
# per upload; the app reports a damaged clip in one line itself.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

from fer.app import main  # noqa: E402

if __name__ == "__main__":
    main()
