"""mini-ImageNet (fewshot_miniimagenet): Ravi & Larochelle's split CSVs and the images in either layout.

SKELETON (issue 19): layout, registration, check, synthetic writer and evaluator are to be written.
"""
from benchmark.data.family import DatasetFamily, frozen_layouts


def _todo(*args, **kwargs):
    raise NotImplementedError("mini-ImageNet family: not written yet (issue 19)")


FAMILY = DatasetFamily(
    name="miniimagenet",
    datasets=frozen_layouts({
        # csv_dir: train.csv/val.csv/test.csv; image_dir: the release's 84x84 images/ folder;
        # imagenet_dir: full ImageNet train folders (CloserLookFewShot's row -> file mapping)
        "miniimagenet_test": {"csv_dir": "miniimagenet", "image_dir": "miniimagenet/images",
                              "imagenet_dir": "imagenet/train", "split": "test"},
    }),
    tops=("miniimagenet",),
    smoke_image_size=(84, 84),
    smoke_overlay="fewshot_miniimagenet.yaml",
    evaluator_type="fewshot",
    register_split=_todo,
    check=_todo,
    synthesize=_todo,
    evaluator=_todo,
)
