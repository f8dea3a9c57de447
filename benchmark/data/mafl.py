"""MAFL on CelebA (mafl_landmarks): CelebA's aligned images and landmark list, MAFL's train/test name lists.

SKELETON (issue 19): layout, registration, check, synthetic writer and evaluator are to be written.
"""
from benchmark.data.family import DatasetFamily, frozen_layouts


def _todo(*args, **kwargs):
    raise NotImplementedError("MAFL family: not written yet (issue 19)")


FAMILY = DatasetFamily(
    name="mafl",
    datasets=frozen_layouts({
        # celeba_dir: Anno/list_landmarks_align_celeba.txt, Eval/list_eval_partition.txt, Img/img_align_celeba/;
        # mafl_dir: training.txt / testing.txt
        "mafl_train": {"celeba_dir": "celeba", "mafl_dir": "celeba/MAFL", "split": "training"},
        "mafl_test": {"celeba_dir": "celeba", "mafl_dir": "celeba/MAFL", "split": "testing"},
    }),
    tops=("celeba",),
    smoke_image_size=(218, 178),
    smoke_overlay="mafl_landmarks.yaml",
    evaluator_type="landmarks",
    register_split=_todo,
    check=_todo,
    synthesize=_todo,
    evaluator=_todo,
)
