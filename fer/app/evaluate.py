"""The Evaluate tab: a zip of labelled faces → accuracy, per-class table and confusion matrix of the
selected model. The result's counts (numbers only) stay in the session, where the Image and Live
tabs quote them beside each answer. `evaluate_archive` is also what ``/evaluate`` answers."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import gradio as gr
import numpy as np

from fer.app import trust
from fer.app.media import inline_outputs
from fer.app.safezip import members_root, read_members
from fer.app.settings import PIPELINES, Settings
from fer.app.uploads import read_upload
from fer.app.views import evaluation_record
from fer.errors import FerError, InputError, JobTimeout
from fer.io import read_image
from fer.limits import MAX_EVALUATE_JOB_S, MAX_ZIP_BYTES

TABLE_HEADERS = ["expression", "precision", "recall", "F1", "n"]
#: What an archive should hold, said again in every refusal.
LAYOUT = "one folder per expression holding its pictures (label/*.jpg, e.g. happy/001.jpg) or RaFD file names"
HOW_TO = ("Upload a **.zip of labelled face images** — one folder per expression (`happy/001.jpg`, "
          "`surprised/…`; usual spellings are understood) or RaFD file names such as "
          "`Rafd090_01_Caucasian_female_angry_frontal.jpg` — to measure the "
          "pipeline your Settings describe (model, detector, margin, saliency input) on them: each image's "
          "largest face, as Image would answer it. Image and Live then quote this measurement beside "
          "answers made with those same settings.")


@dataclass
class EvalReport:
    """What the tab shows.

    Attributes:
        ok: False when the archive or its contents were refused.
        message: one line (skipped images are counted here).
        headline: markdown with n, accuracy and macro F1.
        rows: per-class table (`TABLE_HEADERS`).
        figure: ``(H, W, 3)`` uint8 RGB confusion plot, or None.
        result: `fer.research.evaluate.EvaluationResult.to_dict` plus the skipped files, or None.
        record: the numbers kept in the session (`fer.app.views.evaluation_record`), or None.
    """

    ok: bool
    message: str
    headline: str = ""
    rows: list[list[Any]] = field(default_factory=list)
    figure: np.ndarray | None = None
    result: dict[str, Any] | None = None
    record: dict[str, Any] | None = None


def load_labelled(members: Mapping[PurePosixPath, bytes]) -> Any:
    """A dataset from an archive's members held in memory (`fer.app.safezip.read_members`): under
    its data folder (`fer.app.safezip.members_root`), RaFD when most file names follow RaFD's
    pattern, else one folder per label (`fer.research.datasets.dataset_from_files`)."""
    from fer.models import LABEL_SYNONYMS
    from fer.research.datasets import dataset_from_files

    files = {p: body for p, body in members.items() if not any(part.startswith((".", "__MACOSX")) for part in p.parts)}
    root = members_root(files, frozenset(LABEL_SYNONYMS))
    return dataset_from_files({p.relative_to(root): body for p, body in files.items() if p.is_relative_to(root)},
                              root=root)


def evaluate_archive(data: bytes, name: str, settings: Settings, *, progress: bool = False) -> EvalReport:
    """Read a zip held in memory member by member (nothing is written to disk, no face cache
    either), evaluate the settings' whole pipeline on it (`fer.research.evaluate.evaluate`: each
    image's largest face, top-1, as the Image tab answers) and draw its confusion matrix.

    Args:
        name: the archive's name as the user gave it; only ``.zip`` is taken.
        progress: show tqdm bars (the app's progress bar follows them).
    """
    from fer.research.evaluate import confusion_png, evaluate

    if Path(name).suffix.lower() != ".zip":
        return EvalReport(False, f"{name}: wrong file type; upload a .zip of labelled face images ({LAYOUT}).")
    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return EvalReport(False, str(exc))
    try:
        dataset = load_labelled(read_members(data, name))
        # The session's whole pipeline (detector, margin, saliency input, ensemble): the score is
        # that of the answers Image and Live give with these settings.
        result = evaluate(pipe, dataset, cache=False, progress=progress,
                          deadline=time.monotonic() + MAX_EVALUATE_JOB_S)
        figure = read_image(confusion_png(result, title=f"{pipe.spec.name} on the uploaded faces"))
    except JobTimeout:
        return EvalReport(False, f"{name}: stopped after {MAX_EVALUATE_JOB_S:.0f} s, the time one evaluation may "
                                 "take here; evaluate fewer images, or run `fer evaluate` on your own machine")
    except FerError as exc:
        # Name the upload, and say again what it should hold.
        text = str(exc).splitlines()[0]
        text = text if name in text else f"{name}: {text}"
        return EvalReport(False, f"{text.rstrip('.')}. Expected {LAYOUT}.")
    # Skipped files by their name inside the archive (a {"path": ...} record would look like a
    # downloadable file to Gradio clients).
    skipped = [{"file": s.path, "reason": s.reason} for s in (*dataset.skipped, *result.skipped)]
    data_out = result.to_dict()
    data_out["skipped"] = skipped
    message = f"Scored {result.n} face{'s' if result.n != 1 else ''} of {len(dataset)} labelled images."
    if skipped:
        message += f" {len(skipped)} skipped (no face or unreadable)."
    excluded = sum(result.excluded.values())
    if excluded:
        message += f" {excluded} not scored: labels the model does not know ({', '.join(result.excluded)})."
    fed = f"face × {pipe.input_saliency_name}" if pipe.saliency_input else "plain face crops"
    as_trained = "as in its training" if pipe.runs_as_trained else "with this session's settings (not as trained)"
    confusion = np.asarray(result.confusion, np.int64)
    headline = (f"**Accuracy {result.accuracy:.1%}** on n={result.n} "
                f"({trust.interval(int(np.trace(confusion)), result.n)}), "
                f"{trust.coverage(confusion, result.labels, len(pipe.labels))} · macro F1 {result.macro_f1:.3f} · "
                f"model {pipe.spec.name}, fed {fed} {as_trained}") if result.n else "No face was scored."
    headline += "\n\n" + matrix_markdown(confusion, result.labels)
    rows = [[label, round(v["precision"], 3), round(v["recall"], 3), round(v["f1"], 3), v["n"]]
            for label, v in data_out["per_class"].items()]
    return EvalReport(True, message, headline, rows, figure, data_out,
                      evaluation_record(settings.config, data_out, len(dataset)))


#: The confusion plot's alt text: what it shows, and where its numbers can be read.
PLOT_ALT = ("Confusion matrix plot: rows the true expression, columns the model's answer, a darker cell "
            "holds more of its row's faces; the same counts are in the table beside it.")


def matrix_markdown(confusion: np.ndarray, labels: Sequence[str]) -> str:
    """The confusion matrix as a Markdown table (readable at any size, unlike numbers in a plot):
    rows the true labels, columns the model's answers."""
    lines = ["Confusion matrix (rows: true expression, columns: the model's answer):", "",
             "| true ↓ / answered → | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    lines += [f"| **{label}** | " + " | ".join(str(int(v)) for v in row) + " |"
              for label, row in zip(labels, confusion, strict=True)]
    return "\n".join(lines)


def report_outputs(report: EvalReport) -> list[Any]:
    """Values of status, headline, table, plot and JSON widgets."""
    status = report.message if report.ok else f"⚠️ {report.message}"
    return [status, report.headline, report.rows or None, report.figure, report.result]


def from_widget(value: Any, settings: Settings, progress: bool = False) -> EvalReport:
    """Read the archive a widget value names (`fer.app.uploads`) and evaluate it."""
    try:
        upload = read_upload(value, MAX_ZIP_BYTES)
    except InputError as exc:
        return EvalReport(False, str(exc))
    if upload is None:
        return EvalReport(False, "Upload a .zip of labelled face images first.")
    return evaluate_archive(upload.data, upload.name, settings, progress=progress)


@dataclass
class EvaluateTab:
    """The tab's widgets; ``outputs`` is what `report_outputs` fills."""

    input: Any
    run: Any
    status: Any
    headline: Any
    table: Any
    plot: Any
    json: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.status, self.headline, self.table, self.plot, self.json]


def build(settings: Any, evaluation: Any, guarded: Any) -> EvaluateTab:
    """Lay out the tab (inside an open ``gr.Tab``) and bind its UI event; the run's counts go to
    ``evaluation`` (the session's `gr.State`)."""
    gr.Markdown(HOW_TO, elem_id="evaluate-how-to")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300):
            archive = gr.File(file_types=[".zip"], label="Labelled faces (.zip)", elem_id="evaluate-input")
            run = gr.Button("Evaluate", variant="primary", elem_id="evaluate-run")
            status = gr.Markdown(elem_id="evaluate-status")
            headline = gr.Markdown(elem_id="evaluate-accuracy")
            table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="evaluate-table")
        with gr.Column(min_width=300):
            plot = gr.Image(label="Confusion matrix", show_label=False, interactive=False, format="png",
                            buttons=["download", "fullscreen"], elem_id="evaluate-plot", alt_text=PLOT_ALT)
    with gr.Accordion("Full result (JSON)", open=False):
        result_json = gr.JSON(elem_id="evaluate-json")
    tab = EvaluateTab(archive, run, status, headline, table, plot, result_json)

    @guarded
    def on_run(value: Any, current: Settings, kept: Any,
               progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:
        report = from_widget(value, current, progress=True)
        outputs = inline_outputs(tab.outputs)(report_outputs)(report)
        return [*outputs, report.record if report.record is not None else kept]

    run.click(on_run, [archive, settings, evaluation], [*tab.outputs, evaluation], api_visibility="private",
              concurrency_limit=1, concurrency_id="long-jobs", preprocess=False, postprocess=False)
    return tab
