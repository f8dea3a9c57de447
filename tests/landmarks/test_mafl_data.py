"""The MAFL family (benchmark.data.mafl) and DVE's inter-ocular error (benchmark.data.evaluators): the
published-list check, the layout check naming what is missing, the test-overlap caveat counted from
the user's list, the synthetic faces' landmarks, and the metric on hand-made predictions."""
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import DatasetLayoutError, mafl, validate_layout
from benchmark.data.evaluators import inter_ocular_error
from benchmark.tasks import get_task

TASK = get_task("mafl_landmarks")


@pytest.fixture(scope="module")
def synthetic(module_tmp):
    """A synthetic CelebA/MAFL tree: 6 training faces, 4 test faces (2 in CelebA's train/val id range)."""
    return mafl.FAMILY.write_synthetic(module_tmp / "mafl", num_train=6, num_test=4)


def _copy(synthetic, tmp_path):
    shutil.copytree(synthetic / "celeba", tmp_path / "celeba")
    return tmp_path


# ----------------------------------------------------------------------------- metric

def _faces(n=3):
    rng = np.random.default_rng(0)
    base = np.array([[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]], np.float64)
    return base + rng.uniform(-20, 20, size=(n, 1, 2)) + rng.normal(0, 3, size=(n, 5, 2))


def test_perfect_predictions_have_no_error():
    target = _faces()
    assert inter_ocular_error(target.copy(), target) == 0.0


def test_every_point_off_by_a_tenth_of_the_eye_distance_is_an_error_of_10():
    target = _faces()
    iod = np.linalg.norm(target[:, 0] - target[:, 1], axis=1)  # per face
    direction = np.array([0.6, -0.8])  # unit length, not along an axis
    pred = target + 0.1 * iod[:, None, None] * direction
    assert inter_ocular_error(pred, target) == pytest.approx(10.0, abs=1e-9)
    # the same error in any frame that scales x and y alike (the model's [-1, 1] of the square crop)
    assert inter_ocular_error(2 * pred / 178 - 1, 2 * target / 178 - 1) == pytest.approx(10.0, abs=1e-9)


def test_the_error_is_the_mean_over_points_and_faces():
    target = _faces(2)
    iod = np.linalg.norm(target[:, 0] - target[:, 1], axis=1)
    pred = target.copy()
    pred[0, 2, 0] += 0.5 * iod[0]  # one nose of 10 points off by half the eye distance: 50 / 10 = 5
    assert inter_ocular_error(pred, target) == pytest.approx(5.0, abs=1e-9)


def test_metric_refuses_mismatched_shapes_and_coincident_eyes():
    with pytest.raises(ValueError, match="N x K x 2"):
        inter_ocular_error(np.zeros((2, 5, 2)), np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="inter-ocular distance is 0"):
        inter_ocular_error(np.zeros((1, 5, 2)), np.zeros((1, 5, 2)))


# ----------------------------------------------------------------------------- split lists

def test_a_list_with_one_line_changed_is_refused_naming_file_and_sha256(tmp_path, monkeypatch):
    lists = tmp_path / "celeba" / "MAFL"
    lists.mkdir(parents=True)
    good = "\n".join(f"{i:06d}.jpg" for i in range(1, 11))
    (lists / "training.txt").write_text(good)
    expected = hashlib.sha256(good.encode()).hexdigest()
    monkeypatch.setitem(mafl.LIST_SHA256, "training", expected)
    assert mafl.check_list("mafl_train", lists / "training.txt", "training")[:2] == ["000001.jpg", "000002.jpg"]
    (lists / "training.txt").write_text(good.replace("000007.jpg", "000077.jpg"))
    with pytest.raises(DatasetLayoutError) as exc:
        mafl.check_list("mafl_train", lists / "training.txt", "training")
    message = str(exc.value)
    assert str(lists / "training.txt") in message and f"expected {expected}" in message
    assert "not MAFL's published training.txt" in message


def test_the_published_hashes_are_the_references():
    assert mafl.LIST_SHA256 == {
        "training": "435e0488efcb97dee718118b74b4110d42d9524289238f51692b1d60883ccba6",
        "testing": "0a93fa3202133333045ce4cef5043a2cb1f4b8858b8e96f3ae7f54becfa07f9e"}
    assert mafl.LIST_NAMES == {"training": 19000, "testing": 1000} and mafl.CELEBA_TEST_FIRST_ID == 182638


def test_synthetic_lists_pass_by_their_marker_only(synthetic, tmp_path):
    """A suite-written tree (celeba/.synthetic) is checked for shape, not hash; without the marker its lists
    are refused as not the published ones."""
    validate_layout(TASK, synthetic)
    root = _copy(synthetic, tmp_path)
    (root / "celeba" / ".synthetic").write_text("")  # not the writer's marker: an empty file proves nothing
    with pytest.raises(DatasetLayoutError, match=f"expected {mafl.LIST_SHA256['training']}"):
        validate_layout(TASK, root)
    (root / "celeba" / ".synthetic").unlink()
    with pytest.raises(DatasetLayoutError, match=f"expected {mafl.LIST_SHA256['training']}"):
        validate_layout(TASK, root)


# ----------------------------------------------------------------------------- layout

@pytest.mark.parametrize("missing", ["celeba/Anno/list_landmarks_align_celeba.txt", "celeba/Eval/list_eval_partition.txt",
                                     "celeba/MAFL/testing.txt", "celeba/Img/img_align_celeba/182637.jpg"])
def test_missing_file_is_named(synthetic, tmp_path, missing):
    root = _copy(synthetic, tmp_path)
    (root / missing).unlink()
    with pytest.raises(DatasetLayoutError, match=str(root / missing)):
        validate_layout(TASK, root)


def test_listed_image_without_landmark_row_is_named(synthetic, tmp_path):
    root = _copy(synthetic, tmp_path)
    path = root / "celeba" / mafl.LANDMARK_FILE
    path.write_text("".join(line for line in path.read_text().splitlines(True) if not line.startswith("000003.jpg")))
    with pytest.raises(DatasetLayoutError, match=r"1 listed images without a landmark row \(first: 000003.jpg\)"):
        validate_layout(TASK, root)


def test_the_test_overlap_caveat_is_counted_from_the_users_list(synthetic, caplog):
    with caplog.at_level(logging.WARNING, logger="benchmark.data.mafl"):
        validate_layout(TASK, synthetic)
    (said,) = [r.getMessage() for r in caplog.records if "test faces" in r.getMessage()]
    assert "2 of the 4 test faces have a CelebA id in its train/val range (below 182638)" in said
    assert "mafl-test-overlap" in said
    assert mafl.train_val_overlap(["182637.jpg", "182638.jpg", "000001.jpg"]) == 2
    # every record of the task carries the caveat: it is an assumption of the task's config
    assert any(a.startswith("mafl-test-overlap: 904 of MAFL's 1,000 test faces") for a in TASK.assumptions)


# ----------------------------------------------------------------------------- synthetic faces

def test_synthetic_faces_are_drawn_at_their_landmarks(synthetic):
    from PIL import Image

    celeba = Path(synthetic) / "celeba"
    names = mafl.read_names(celeba / "MAFL" / "training.txt")
    assert names == [f"{i:06d}.jpg" for i in range(1, 7)]
    points = mafl.read_landmarks(celeba / mafl.LANDMARK_FILE, names)
    for name in names:
        img = np.asarray(Image.open(celeba / mafl.IMAGE_DIR / name).convert("RGB")).astype(int)
        assert img.shape == (218, 178, 3)
        (lx, ly), (rx, ry), (nx, ny), (mx, my), _ = (tuple(int(v) for v in p) for p in points[name])
        assert lx < rx and max(ly, ry) < ny < my  # eyes left to right, above the nose, above the mouth
        for x, y in ((lx, ly), (rx, ry)):
            assert img[y, x].sum() < 200  # a dark pupil at each eye landmark (JPEG: near, not exact)
        r, g, b = img[my, mx]
        assert r > 150 and g < 100 and b < 100  # the red mouth at its left corner
    partition = mafl.read_partition(celeba / mafl.PARTITION_FILE)
    assert partition["000001.jpg"] == 0 and partition["182638.jpg"] == 2
