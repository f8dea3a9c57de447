"""Settings the data cannot serve are refused before compute, naming the option (and the file where the data
decides): before, each of these launched the run, built the model and failed at its first batch or episode
(a failed record, `trial 0: failed`), or trained on crops padded with black (CROP > RESIZE, exit 0).

Data-dependent checks: benchmark.data.validate_settings (each family's check_settings); the others:
benchmark.tasks.config._check_values."""
import pytest

from tests.helpers.refusal import one_error_line
from tests.helpers.tools import tool

# (task, KEY VALUE overrides, words the one error line must hold)
CASES = {
    "an episode wants more classes than the split": (
        "fewshot_miniimagenet", ["BENCHMARK.FEWSHOT.WAYS", "1000"],
        "BENCHMARK.FEWSHOT.WAYS 1000: an episode draws that many classes, the split has 6: "),
    "an episode wants more images of a class than it has": (
        "fewshot_miniimagenet", ["BENCHMARK.FEWSHOT.QUERIES", "1000"],
        "BENCHMARK.FEWSHOT.SHOTS 5 + QUERIES 1000: an episode draws 1005 images of a class, class n93000000 has 8"),
    "a few-shot crop larger than the resize": (
        "fewshot_miniimagenet", ["BENCHMARK.FEWSHOT.CROP", "300"],
        "BENCHMARK.FEWSHOT.CROP 300 must not exceed BENCHMARK.FEWSHOT.RESIZE"),
    "a landmark crop outside the images": (
        "mafl_landmarks", ["BENCHMARK.LANDMARKS.CROP_TOP", "100"],
        "BENCHMARK.LANDMARKS crop rows 100..278, columns 0..178 does not fit the 178x218 image"),
    "a huge landmark crop": (
        "mafl_landmarks", ["BENCHMARK.LANDMARKS.CROP_SIZE", "100000"], "does not fit the 178x218 image"),
    "a head for other points than MAFL's": (
        "mafl_landmarks", ["BENCHMARK.LANDMARKS.NUM_LANDMARKS", "7"],
        "BENCHMARK.LANDMARKS.NUM_LANDMARKS 7: MAFL annotates 5 points (lefteye, righteye, nose, leftmouth, rightmouth)"),
    "a zero pixel std": (
        "mafl_landmarks", ["BENCHMARK.LANDMARKS.PIXEL_STD", "[0.0, 0.1, 0.1]"],
        "BENCHMARK.LANDMARKS.PIXEL_STD must hold 3 finite numbers (R, G, B), each > 0, got [0.0, 0.1, 0.1]"),
    "a pixel mean of two channels": (
        "mafl_landmarks", ["BENCHMARK.LANDMARKS.PIXEL_MEAN", "[0.1, 0.1]"],
        "BENCHMARK.LANDMARKS.PIXEL_MEAN must hold 3 finite numbers (R, G, B), got [0.1, 0.1]"),
    "a pixel mean of words": (
        "mafl_landmarks", ["BENCHMARK.LANDMARKS.PIXEL_MEAN", "['a', 'b', 'c']"],
        "BENCHMARK.LANDMARKS.PIXEL_MEAN must hold 3 finite numbers (R, G, B), got ['a', 'b', 'c']"),
    "a linear layer with fewer outputs than classes": (
        "imagenet_linear", ["BENCHMARK.LINEAR.NUM_CLASSES", "2"],
        "BENCHMARK.LINEAR.NUM_CLASSES 2: the linear layer needs an output for each of the 4 classes of"),
    "a linear test crop larger than the resize": (
        "imagenet_linear", ["BENCHMARK.LINEAR.TEST_CROP", "1000"],
        "BENCHMARK.LINEAR.TEST_CROP 1000 must not exceed BENCHMARK.LINEAR.TEST_RESIZE"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_settings_the_data_cannot_serve_are_refused_before_compute(tmp_path, capsys, synthetic_checkpoint, case):
    task, overrides, words = CASES[case]
    out = tmp_path / "out"
    capsys.readouterr()
    rc = tool("run_transfer")(["--task", task, "--smoke", "--weights", str(synthetic_checkpoint("moco", width=8)),
                               "--output", str(out), *overrides])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and words in line, line
    assert not out.exists()  # the run never started
