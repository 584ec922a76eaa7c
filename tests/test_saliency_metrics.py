"""Saliency metrics against values worked out by hand, and the evaluate-saliency command."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer.errors import InputError
from fer.research.saliency_metrics import add_arguments, auc_judd, cc, kld, nss, run, sim

P = np.array([[1.0, 2.0], [3.0, 4.0]])


def test_cc_by_hand():
    # Deviations from the mean 2.5: P → (-1.5, -0.5, 0.5, 1.5), Q → (-1.5, 0.5, -0.5, 1.5).
    # Σ products = 2.25 - 0.25 - 0.25 + 2.25 = 4; Σ squares = 5 each; CC = 4 / 5.
    q = np.array([[1.0, 3.0], [2.0, 4.0]])
    assert cc(P, q) == pytest.approx(0.8)
    assert cc(P, 10 * P + 3) == pytest.approx(1.0)
    assert cc(P, -P) == pytest.approx(-1.0)
    assert math.isnan(cc(np.ones((2, 2)), q))  # undefined for a constant map: NaN, as the benchmark


def test_kld_by_hand():
    # P uniform → 1/4 each; Q = (1/2, 0, 0, 1/2). KLD = 2 · 1/2 · log((1/2) / (1/4)) = log 2.
    q = np.array([[2.0, 0.0], [0.0, 2.0]])
    assert kld(np.ones((2, 2)), q) == pytest.approx(math.log(2), abs=1e-9)
    assert kld(q, q) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError):
        kld(-P, q)


def test_nss_by_hand():
    # mean 2.5, sample std sqrt(Σ dev² / 3) = sqrt(5/3) = 1.2910; fixations on 4 and 3:
    # ((4 - 2.5) + (3 - 2.5)) / 2 / 1.2910 = 1 / 1.2910 = 0.774597.
    fix = np.array([[0, 0], [1, 1]])
    assert nss(P, fix) == pytest.approx(1 / math.sqrt(5 / 3))
    assert nss(P, np.array([[0, 0], [0, 1]])) == pytest.approx(1.5 / math.sqrt(5 / 3))
    with pytest.raises(InputError):
        nss(P, np.zeros((2, 2)))


def test_sim_by_hand():
    # P min-max → (0, 1/3, 2/3, 1), sum 2 → (0, 1/6, 1/3, 1/2); Q → (0, 0, 0, 1).
    # SIM = Σ min = 0 + 0 + 0 + 1/2.
    q = np.array([[0.0, 0.0], [0.0, 1.0]])
    assert sim(P, q) == pytest.approx(0.5)
    assert sim(P, P) == pytest.approx(1.0)


def test_empty_and_constant_predictions_as_the_benchmark_scores_them():
    q = np.array([[2.0, 0.0], [0.0, 2.0]])
    zero, flat = np.zeros((2, 2)), np.full((2, 2), 0.3)
    # KLD: the zero map keeps no mass, so Q = (1/2, 0, 0, 1/2) meets P + eps = eps:
    # 2 · 1/2 · log(eps + (1/2) / eps) = log(eps + 0.5 / eps) ≈ 35.35 nats (was 0.69: zero read as uniform).
    eps = np.finfo(np.float64).eps
    assert kld(zero, q) == pytest.approx(math.log(eps + 0.5 / eps))
    assert kld(zero, q) > 35
    assert kld(q, zero) == 0.0  # no ground-truth mass: nothing to diverge from
    # SIM: the zero map stays zero (Σ min(0, Q) = 0); a constant non-zero map cannot be min-max
    # rescaled (0 / 0), so it is NaN.
    assert sim(zero, q) == 0.0
    assert math.isnan(sim(flat, q))
    # CC and NSS divide by the prediction's standard deviation: NaN for a constant map.
    assert math.isnan(cc(flat, q)) and math.isnan(cc(zero, q))
    assert math.isnan(nss(flat, np.array([[1, 0], [0, 0]])))


def test_auc_judd_jitter_breaks_ties_at_random():
    # Map (1, 0, 0), fixations on the 1 and the first 0 (n_fix 2, n_pixels 3).
    # Without jitter both zeros tie at the second threshold: 3 pixels ≥ 0 → TP 1, FP (3 - 2)/1 = 1;
    # curve (0,0) (0,.5) (1,1) (1,1), area (.5 + 1)/2 = 0.75.
    # With jitter the fixated zero ranks above the other zero half the time: then 2 pixels ≥ it,
    # FP 0, curve (0,0) (0,.5) (0,1) (1,1), area 1.0; else 0.75. Expected 0.875.
    s = np.array([[1.0, 0.0, 0.0]])
    fix = np.array([[1, 1, 0]])
    assert auc_judd(s, fix, jitter=False) == pytest.approx(0.75)
    scores = [auc_judd(s, fix, seed=seed) for seed in range(400)]
    assert set(np.round(scores, 9)) == {0.75, 1.0}
    assert np.mean(scores) == pytest.approx(0.875, abs=0.03)
    assert auc_judd(s, fix, seed=7) == auc_judd(s, fix, seed=7)  # seeded: reproducible
    # A constant map: no ranking at all without jitter (NaN, as the reference code's 0/0), chance-like with it.
    assert math.isnan(auc_judd(np.ones((3, 3)), np.eye(3), jitter=False))
    assert 0.0 <= auc_judd(np.ones((3, 3)), np.eye(3)) <= 1.0


def test_summaries_leave_undefined_values_out_and_count_them():
    from fer.research.saliency_metrics import summarise, undefined

    rows = [{"cc": 0.5, "sim": 0.2}, {"cc": math.nan, "sim": 0.4}, {"cc": math.nan, "sim": 0.0}]
    assert summarise(rows) == {"cc": 0.5, "sim": pytest.approx(0.2)}
    assert undefined(rows) == {"cc": 2}
    assert math.isnan(summarise([{"cc": math.nan}])["cc"])


def test_auc_judd_by_hand():
    # Values 0.9, 0.1 / 0.5, 0.3; fixations on 0.9 and 0.3 (n_fix 2, n_pixels 4).
    # Threshold 0.9: 1 pixel ≥ → TP 1/2, FP (1 - 1)/2 = 0. Threshold 0.3: 3 pixels ≥ → TP 1, FP (3 - 2)/2.
    # Curve (0,0) (0,.5) (.5,1) (1,1): area 0 + .5·(.5 + 1)/2 + .5·1 = 0.875.
    s = np.array([[0.9, 0.1], [0.5, 0.3]])
    fix = np.array([[1, 0], [0, 1]])
    assert auc_judd(s, fix) == pytest.approx(0.875)
    assert auc_judd(s, np.array([[1, 0], [0, 0]])) == pytest.approx(1.0)  # fixation on the maximum
    # One fixation on the minimum 0.1: all 4 pixels ≥ → TP 1, FP (4 - 1)/3 = 1; the curve is the
    # diagonal (0,0) (1,1) (1,1), area 0.5 (Judd's AUC has no point below the fixated values).
    assert auc_judd(s, np.array([[0, 1], [0, 0]])) == pytest.approx(0.5)


def test_metrics_3x3_perfect_and_shape_check():
    density = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], float)
    fix = (density == 4).astype(np.uint8)
    assert cc(density, density) == pytest.approx(1.0)
    assert sim(density, density) == pytest.approx(1.0)
    assert auc_judd(density, fix) == pytest.approx(1.0)
    # Centre value 4, mean 8/9, sample std sqrt(Σ (x - 8/9)² / 8) = sqrt((4·(8/9)² + 4·(1/9)² + (28/9)²) / 8).
    std = math.sqrt((4 * (8 / 9) ** 2 + 4 * (1 / 9) ** 2 + (28 / 9) ** 2) / 8)
    assert nss(density, fix) == pytest.approx((4 - 8 / 9) / std)
    with pytest.raises(InputError, match="differ in shape"):
        cc(density, np.ones((2, 2)))


def _blob(h: int, w: int, cy: float, cx: float, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def test_evaluate_saliency_cli_image_mode(tmp_path, capsys):
    """Spectral residual scored on whole images whose fixations sit on a bright blob."""
    rng = np.random.default_rng(0)
    for d in ("images", "maps", "fixations"):
        (tmp_path / d).mkdir()
    for i in range(3):
        cy, cx = rng.uniform(20, 60), rng.uniform(20, 100)
        img = np.clip(rng.normal(80, 10, (80, 120)) + 170 * _blob(80, 120, cy, cx, 5), 0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "images" / f"s{i}.png"), img)
        cv2.imwrite(str(tmp_path / "maps" / f"s{i}.png"), (255 * _blob(80, 120, cy, cx, 8)).astype(np.uint8))
        fix = np.zeros((80, 120), np.uint8)
        fix[int(cy), int(cx)] = 255
        cv2.imwrite(str(tmp_path / "fixations" / f"s{i}.png"), fix)
    (tmp_path / "images" / "orphan.png").write_bytes(b"no map for this one")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([
        "--predictor", "spectral-residual", "--mode", "image", "--json",
        "--images", str(tmp_path / "images"), "--maps", str(tmp_path / "maps"), "--fixations", str(tmp_path / "fixations"),
    ])
    status = run(args)
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert status == 1  # the orphan image is skipped and listed
    assert "orphan.png" in out.err
    assert report["n"] == 3 and report["skipped"] == 1
    assert set(report["metrics"]) == {"cc", "kld", "sim", "nss", "auc_judd", "auc_borji", "sauc"}
    assert report["metrics"]["cc"] > 0.5
    assert report["metrics"]["auc_judd"] > 0.9 and report["metrics"]["auc_borji"] > 0.8
    assert 0 <= report["metrics"]["sauc"] <= 1
    # The shuffled AUC's negatives are the fixations of the samples before: the first has none.
    assert (report["auc_jitter"], report["seed"], report["undefined"]) == (True, 0, {"sauc": 1})
    args.jitter = False
    run(args)
    unjittered = json.loads(capsys.readouterr().out)
    assert unjittered["auc_jitter"] is False
    # Spectral residual maps have no large ties: the jitter moves AUC-Judd by rounding only.
    assert unjittered["metrics"]["auc_judd"] == pytest.approx(report["metrics"]["auc_judd"], abs=1e-3)


def test_evaluate_saliency_rejects_face_prior_in_image_mode(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--predictor", "face-prior", "--mode", "image", "--images", str(tmp_path), "--maps", str(tmp_path)])
    assert run(args) == 2
    assert "face-prior needs face keypoints" in capsys.readouterr().err


def test_evaluate_saliency_cli_faces_mode(tmp_path, capsys):
    """Real photos: ground truth put on the astronaut's eyes in image pixels must line up with the
    face-prior map once carried into the face crop; the cat photo has no face and is skipped."""
    from fer.face import FaceDetector
    from fer.io import read_image

    assets = Path(__file__).resolve().parent.parent / "assets"
    image = read_image(assets / "astronaut.png")
    with FaceDetector() as detector:
        face = detector(image)[0]
    h, w = image.shape[:2]
    iod = float(np.linalg.norm(face.keypoints[1] - face.keypoints[0]))
    density = sum(_blob(h, w, y, x, 0.3 * iod) for x, y in face.keypoints[:2])
    fix = np.zeros((h, w), np.uint8)
    for x, y in face.keypoints[:2]:
        fix[int(y), int(x)] = 255
    for d in ("images", "maps", "fixations"):
        (tmp_path / d).mkdir()
    for name, img, dens, fx in (("astronaut", image, density, fix), ("chelsea", read_image(assets / "chelsea.png"), None, None)):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), img[..., ::-1])
        dens = np.ones(img.shape[:2]) if dens is None else dens / dens.max()
        fx = np.zeros(img.shape[:2], np.uint8) if fx is None else fx
        cv2.imwrite(str(tmp_path / "maps" / f"{name}.png"), np.rint(255 * dens).astype(np.uint8))
        cv2.imwrite(str(tmp_path / "fixations" / f"{name}.png"), fx)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([
        "--images", str(tmp_path / "images"), "--maps", str(tmp_path / "maps"), "--fixations", str(tmp_path / "fixations"),
    ])
    status = run(args)
    out = capsys.readouterr()
    assert status == 1 and "chelsea.png: no face found" in out.err
    assert "face-prior: 1 faces scored, 1 skipped" in out.out and "AUC-Judd" in out.out
    names = ["cc", "kld", "sim", "nss", "auc_judd", "auc_borji", "sauc"]
    values = dict(zip(names, map(float, out.out.strip().splitlines()[-1].split()), strict=True))
    assert values["cc"] > 0.6 and values["auc_judd"] > 0.95 and values["nss"] > 2 and values["auc_borji"] > 0.9
    assert np.isnan(values["sauc"]) and "no earlier sample) for sauc 1" in out.out  # one face: no others


def _reference_sampled_auc(saliency, fixations, negatives_of_split, splits, step=0.1):
    """A line-by-line port of the benchmark's AUC_Borji.m / AUC_shuffled.m loops (normalise, sweep
    ``0:step:max`` from the top, count with ``>=``, trapz), the negatives of each split given."""
    s = (saliency - saliency.min()) / (saliency.max() - saliency.min())
    S, F = s.ravel(), fixations.ravel()
    Sth = S[F > 0]
    auc = []
    for k in range(splits):
        curfix = negatives_of_split(S, k)
        top = max(np.max(Sth), np.max(curfix))
        allthreshes = []
        t = 0
        while t * step <= top + 1e-12:
            allthreshes.append(t * step)
            t += 1
        allthreshes = allthreshes[::-1]
        tp, fp = [0.0], [0.0]
        for thresh in allthreshes:
            tp.append(sum(1 for v in Sth if v >= thresh) / len(Sth))
            fp.append(sum(1 for v in curfix if v >= thresh) / len(curfix))
        tp.append(1.0)
        fp.append(1.0)
        auc.append(sum((fp[i + 1] - fp[i]) * (tp[i + 1] + tp[i]) / 2 for i in range(len(tp) - 1)))
    return float(np.mean(auc))


def test_auc_borji_and_shuffled_match_a_port_of_the_benchmark_code():
    from fer.research.saliency_auc import auc_borji, auc_shuffled

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:24, :32]
    centre = np.exp(-((yy - 12) ** 2 + (xx - 16) ** 2) / 60.0)
    saliency = centre + 0.3 * rng.random((24, 32))
    fixations = (rng.random((24, 32)) < 0.04 + 0.3 * centre).astype(np.uint8)
    other = (rng.random((24, 32)) < 0.02 + 0.4 * centre).astype(np.uint8)
    n_fix, splits = int(fixations.sum()), 20
    draws = np.random.default_rng(9).integers(0, saliency.size, (n_fix, splits))
    expected = _reference_sampled_auc(saliency, fixations, lambda S, k: S[draws[:, k]], splits)
    assert auc_borji(saliency, fixations, splits=splits, seed=9) == pytest.approx(expected, abs=1e-12)
    candidates = np.flatnonzero(other.ravel() > 0)
    perm = np.random.default_rng(3)
    orders = [perm.permutation(candidates)[:min(n_fix, candidates.size)] for _ in range(splits)]
    expected = _reference_sampled_auc(saliency, fixations, lambda S, k: S[orders[k]], splits)
    assert auc_shuffled(saliency, fixations, other, splits=splits, seed=3) == pytest.approx(expected, abs=1e-12)
    # What the two tell apart: the centre prior alone is rewarded by AUC-Borji (human fixations are
    # centre-biased), and is near chance under the shuffled AUC (other images' fixations are too).
    assert auc_borji(centre, fixations, seed=1) > 0.7
    assert abs(auc_shuffled(centre, fixations, other, seed=1) - 0.5) < 0.15
    assert auc_borji(np.ones((24, 32)), fixations) == 0.5  # constant map: NaN after rescaling, as MATLAB
