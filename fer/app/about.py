"""The About tab: responsible use first, then what the app keeps (privacy), the model card, how
saliency and Grad-CAM are computed and which predictor made each map."""

from __future__ import annotations

from typing import Any

import gradio as gr

from fer.app.settings import PIPELINES, Settings
from fer.errors import FerError
from fer.limits import SESSION_MEMORY_BYTES, SESSION_TTL_S, UPLOAD_MAX_AGE_S, UPLOAD_SWEEP_EVERY_S
from fer.texts import RESPONSIBLE_USE

#: Seconds between drops of Gradio's per-session copies of pictures (`fer.app.internals.forget_shown`).
FORGET_SHOWN_EVERY_S = 10


def upload_minutes() -> int:
    """The longest an upload stays in Gradio's upload folder, in whole minutes (rounded up)."""
    return -(-(UPLOAD_MAX_AGE_S + UPLOAD_SWEEP_EVERY_S) // 60)


def privacy_markdown() -> str:
    """What the server keeps of a visitor's pictures, and for how long (what the tests check)."""
    return f"""\
### Privacy
- **Webcam, on this device** (Live's default where the browser can): the frames are analysed by this
  page itself and none is sent anywhere; the page downloads the models once, from this app.
- **Webcam, on the server:** frames are sent to the app, analysed in memory and never written to disk,
  logged or kept; the pictures sent back are inlined in the page. Your session's posed-versus-said counts (numbers only) stay in
  server memory for your session; their CSV is made in memory too.
- **Uploads** (pictures, clips, zips): Gradio stores each upload in its upload folder; the app reads
  it once into memory and writes it nowhere else. Gradio deletes it within {upload_minutes()} minutes,
  and everything at shutdown; a restarted server first removes anything a killed one left. A zip is
  unpacked into a private folder deleted as soon as the evaluation ends; a clip is decoded from a
  private copy deleted as soon as the analysis ends. Every picture and download sent back is inlined.
- **Memory:** your last picture and clip (and what was computed from them) stay in server memory, for
  your session only, so that a settings change or a new sampling rate needs no new upload: until you
  close the tab, at most {SESSION_TTL_S // 60} minutes after their last use, and never more than
  {SESSION_MEMORY_BYTES // 2**20} MB for all visitors together (the oldest go first). Gradio's own copies of
  the pictures exchanged with your browser are dropped within {FORGET_SHOWN_EVERY_S} seconds. The HTTP API
  keeps nothing between calls. Your browser keeps no history of your runs. Nothing is used for
  training or shared.
"""


def about_markdown(settings: Settings) -> str:
    """The About tab for the session's settings."""
    from fer.app.settings_tab import saliency_notes
    from fer.research.card import model_card
    from fer.saliency import SALIENCY_REGISTRY

    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return f"{RESPONSIBLE_USE}\n{privacy_markdown()}\nModel not loaded: {exc}"
    try:
        card = model_card(pipe.spec)
    except FerError as exc:
        card = f"(no model card: {exc})"
    shown = SALIENCY_REGISTRY[settings.saliency].description if settings.saliency in SALIENCY_REGISTRY else "?"
    fed = (f"The CNN is fed the face crop × the **{pipe.input_saliency_name}** map "
           f"(floor {pipe.saliency_floor:.2f}: `crop × (floor + (1 − floor) × map)`), the paper's method."
           if pipe.saliency_input else
           "The CNN is fed the plain face crop: the shipped model was trained on plain crops. The saliency map is "
           "shown beside it; Settings can feed the CNN face × saliency instead (the paper's method), which a model "
           "not trained on such inputs handles poorly.")
    saliency = (
        "### Saliency: where humans would look\n"
        f"Shown predictor: **{settings.saliency}**: {shown}\n\n{fed}\n\n"
        "The paper (Mavani et al., ICCV-W 2017) used ML-Net, a saliency CNN trained on SALICON. No trained "
        "ML-Net weights ship with this demo, so unless an ML-Net checkpoint is installed the maps come from "
        "the predictors below, and every panel names the one that made its map.\n\n" + saliency_notes(howto=True)
        + "\n\n**Training a model on face × saliency** (the paper's method; the shipped model was trained on "
        "plain crops): `python -m fer train --saliency …` (see the README's training section)."
    )
    gradcam = ("### Grad-CAM: where the CNN looked\nThe gradient of the shown expression's score, averaged "
               "over each channel of the CNN's last feature map, weights that map (Selvaraju et al., ICCV 2017).")
    return "\n\n".join([RESPONSIBLE_USE, privacy_markdown(), card, saliency, gradcam])


def build(settings: Any) -> Any:
    """The tab's one widget (inside an open ``gr.Tab``)."""
    return gr.Markdown(about_markdown(settings.value), elem_id="about")
