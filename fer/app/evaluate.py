"""The Evaluate tab: a zip of labelled faces → accuracy, per-class table and confusion matrix of the
selected model. The result's counts (numbers only) stay in the session, where the Image and Live
tabs quote them beside each answer. `evaluate_archive` is also what ``/evaluate`` answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from fer.app.folders import scratch
from fer.app.media import inline_outputs
from fer.app.safezip import dataset_root, safe_extract
from fer.app.settings import PIPELINES, Settings
from fer.app.uploads import read_upload
from fer.app.views import evaluation_record
from fer.errors import FerError, InputError
from fer.io import read_image
from fer.limits import MAX_ZIP_BYTES

TABLE_HEADERS = ["expression", "precision", "recall", "F1", "n"]
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


def load_labelled(folder: Path) -> Any:
    """A dataset from an unpacked archive: RaFD when most file names follow RaFD's pattern, else
    one folder per label (`fer.research.datasets.Dataset`)."""
    from fer.models import LABEL_SYNONYMS
    from fer.research.datasets import IMAGE_SUFFIXES, RAFD_PATTERN, load_folder, load_rafd

    root = dataset_root(folder, frozenset(LABEL_SYNONYMS))
    images = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
              and "__MACOSX" not in p.parts]
    if not images:
        raise InputError("the archive holds no images (expected <label>/<image> folders or RaFD file names)")
    if sum(bool(RAFD_PATTERN.match(p.stem)) for p in images) > len(images) / 2:
        return load_rafd(root, angles=None)
    return load_folder(root, name="uploaded")


def evaluate_archive(data: bytes, name: str, settings: Settings, *, progress: bool = False) -> EvalReport:
    """Unpack a zip held in memory into a private folder (deleted at the end), evaluate the
    settings' whole pipeline on it (`fer.research.evaluate.evaluate`: each image's largest face,
    top-1, as the Image tab answers) and draw its confusion matrix.

    Args:
        name: the archive's name as the user gave it; only ``.zip`` is taken.
        progress: show tqdm bars (the app's progress bar follows them).
    """
    from fer.research.evaluate import evaluate, plot_confusion

    if Path(name).suffix.lower() != ".zip":
        return EvalReport(False, f"{name}: wrong file type; upload a .zip of labelled face images.")
    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return EvalReport(False, str(exc))
    with scratch("fer-eval-") as tmp:
        unpacked = tmp / "data"
        unpacked.mkdir()
        try:
            safe_extract(data, unpacked, name)
            dataset = load_labelled(unpacked)
            # The face-crop cache lives in the private folder too: nothing of the upload outlives it.
            # The session's whole pipeline (detector, margin, saliency input, ensemble): the score is
            # that of the answers Image and Live give with these settings.
            result = evaluate(pipe, dataset, cache_dir=tmp / "cache", progress=progress)
            figure = read_image(plot_confusion(result, tmp / "confusion.png",
                                               title=f"{pipe.spec.name} on the uploaded faces"))
        except FerError as exc:
            # Paths inside the private folder mean nothing to the user: show them relative to the archive.
            return EvalReport(False, str(exc).replace(f"{unpacked}/", "").replace(str(unpacked), "the archive"))
        skipped = [{"file": _in_archive(s.path, unpacked), "reason": s.reason}
                   for s in (*dataset.skipped, *result.skipped)]
    data_out = result.to_dict()
    # Skipped files by their name inside the archive: the folder is gone, and a {"path": ...}
    # record would look like a downloadable file to Gradio clients.
    data_out["skipped"] = skipped
    message = f"Scored {result.n} face{'s' if result.n != 1 else ''} of {len(dataset)} labelled images."
    if skipped:
        message += f" {len(skipped)} skipped (no face or unreadable)."
    excluded = sum(result.excluded.values())
    if excluded:
        message += f" {excluded} not scored: labels the model does not know ({', '.join(result.excluded)})."
    fed = f"face × {pipe.input_saliency_name}" if pipe.saliency_input else "plain face crops"
    as_trained = "as in its training" if pipe.runs_as_trained else "with this session's settings (not as trained)"
    headline = (f"**Accuracy {result.accuracy:.1%}** on n={result.n} · macro F1 {result.macro_f1:.3f} · "
                f"model {pipe.spec.name}, fed {fed} {as_trained}")
    rows = [[label, round(v["precision"], 3), round(v["recall"], 3), round(v["f1"], 3), v["n"]]
            for label, v in data_out["per_class"].items()]
    return EvalReport(True, message, headline, rows, figure, data_out,
                      evaluation_record(settings.config, data_out, len(dataset)))


def _in_archive(path: str, unpacked: Path) -> str:
    """``path`` relative to the unpacked archive folder (as the user named it in the zip)."""
    try:
        return Path(path).relative_to(unpacked).as_posix()
    except ValueError:
        return Path(path).name


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
                            buttons=["download", "fullscreen"], elem_id="evaluate-plot")
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
