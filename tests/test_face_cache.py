"""Face crops of dataset samples: ready-made crops with estimated keypoints, unreadable images
skipped, detection results cached by file content (real astronaut photo) in the folder FER_CACHE_DIR
names when the cache is made (none with FER_CACHE_DIR=off), saliency-weighted crops."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fer.errors import InputError
from fer.research import datasets as D
from fer.research import face_cache as C
from tests import synthetic as S
from tests.conftest import ASTRONAUT, NO_FACE


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crops")
    S.write_folder(root / "folder", n_subjects=3, per_label=2)
    return {"folder": root / "folder"}


def test_assumed_crops_and_unreadable_images(data: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "faces"
    shutil.copytree(data["folder"] / "happiness", root / "happy")
    (root / "happy" / "s99_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = D.load_folder(root, assume_cropped=True)
    crops = C.prepare_crops(ds.samples, crop_size=40, assume_cropped=True, progress=False)
    assert crops.images.shape == (len(ds) - 1, 40, 40, 3) and crops.images.dtype == np.uint8
    np.testing.assert_allclose(crops.keypoints[0], C.ASSUMED_CROP_KEYPOINTS * 40)
    assert [(Path(s.path).name, "corrupt" in s.reason or "unsupported image format" in s.reason) for s in crops.skipped] == [
        ("s99_broken.png", True)
    ]


def test_detection_crops_are_cached(tmp_path: Path) -> None:
    """The real astronaut photo goes through MediaPipe once; a renamed copy hits the cache."""
    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    shutil.copy(ASTRONAUT, root / "happy" / "a_astronaut.png")
    shutil.copy(NO_FACE, root / "happy" / "b_coffee.png")
    cache_dir = tmp_path / "cache"
    ds = D.load_folder(root)
    crops = C.prepare_crops(ds.samples, crop_size=96, cache_dir=cache_dir, progress=False)
    assert crops.images.shape == (1, 96, 96, 3)
    assert [(Path(s.path).name, s.reason) for s in crops.skipped] == [("b_coffee.png", "no face found")]
    kp = crops.keypoints[0]
    assert kp[0, 0] < kp[1, 0] and abs(kp[0, 1] - kp[1, 1]) < 1.0  # eyes level, subject's right eye on the left
    assert len(list(cache_dir.rglob("*.npz"))) == 2  # the face, and the "no face" verdict

    shutil.copy(ASTRONAUT, root / "happy" / "c_renamed.png")
    with C.FaceCache(cache_dir, crop_size=96) as cache:
        crop, keypoints = cache.get(root / "happy" / "c_renamed.png")
        with pytest.raises(InputError, match="no face"):
            cache.get(root / "happy" / "b_coffee.png")
        assert cache._detector is None  # both answers came from disk
    np.testing.assert_array_equal(crop, crops.images[0])
    np.testing.assert_array_equal(keypoints, crops.keypoints[0])
    # Other crop settings are other cache entries.
    with C.FaceCache(cache_dir, crop_size=64) as cache:
        assert cache.get(root / "happy" / "c_renamed.png")[0].shape == (64, 64, 3)


def test_cache_folder_is_read_when_used_and_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "photos" / "happy").mkdir(parents=True)
    shutil.copy(ASTRONAUT, tmp_path / "photos" / "happy" / "a_astronaut.png")
    samples = D.load_folder(tmp_path / "photos").samples
    monkeypatch.chdir(tmp_path)  # a relative folder named "off" would land here
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))  # set after fer was imported
    cached = C.prepare_crops(samples, crop_size=64, progress=False)
    assert [p.parent.parent for p in (tmp_path / "cache").rglob("*.npz")] == [tmp_path / "cache" / "crops"]

    monkeypatch.setenv("FER_CACHE_DIR", "off")
    before = sorted(tmp_path.rglob("*"))
    with C.FaceCache(crop_size=64) as cache:
        assert cache.cache_dir is None
        crop, keypoints = cache.get(samples[0].path)
        assert cache._detector is not None  # detected again, not read from the cache
    assert sorted(tmp_path.rglob("*")) == before
    np.testing.assert_array_equal(crop, cached.images[0])
    np.testing.assert_array_equal(keypoints, cached.keypoints[0])


def test_weighted_crops_apply_the_map_with_its_floor(data: dict[str, Path]) -> None:
    crops = C.prepare_crops(D.load_folder(data["folder"]).samples, crop_size=32, assume_cropped=True, progress=False)
    assert C.weighted_crops(crops, None, 0.0) is crops.images

    def left_half(images: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        maps = np.zeros(images.shape[:3], np.float32)
        maps[:, :, :16] = 1.0
        return maps

    seen = C.weighted_crops(crops, left_half, 0.25, batch_size=5)
    np.testing.assert_array_equal(seen[:, :, :16], crops.images[:, :, :16])
    np.testing.assert_array_equal(seen[:, :, 16:], np.rint(crops.images[:, :, 16:] * 0.25).astype(np.uint8))
