"""The registered transfer tasks. Protocol values live in their configs (configs/<task>.yaml), each
with its source; a task's assumptions come from its config's [assumption:ID] tags (Task.assumptions)."""
from benchmark.tasks.registry import Task, register_task

_DET = ("bbox/AP", "bbox/AP50", "bbox/AP75")
_MOCO = "MoCo detection/configs; detectron2 defaults"

register_task(Task(
    name="voc07",
    config="voc07.yaml",
    train=("voc_2007_trainval",),
    test=("voc_2007_test",),
    data_format="voc",
    primary_metric="bbox/AP",
    metrics=_DET,
    source="Zhao et al. ICLR 2021 VOC07 setting; schedule of VISSL rn50_transfer_voc07_detectron2_e2e.yaml (assumed)",
    description="Faster R-CNN R50-C4, VOC07 trainval -> VOC07 test, 12.5k iterations",
))
register_task(Task(
    name="voc0712",
    config="voc0712.yaml",
    train=("voc_2007_trainval", "voc_2012_trainval"),
    test=("voc_2007_test",),
    data_format="voc",
    primary_metric="bbox/AP",
    metrics=_DET,
    source=f"MoCo detection/configs/pascal_voc_R_50_C4_24k_moco.yaml; {_MOCO}",
    description="Faster R-CNN R50-C4, VOC07+12 trainval -> VOC07 test, 24k iterations",
))
_COCO_METRICS = _DET + ("segm/AP", "segm/AP50", "segm/AP75")
register_task(Task(
    name="coco",
    config="coco.yaml",
    train=("coco_2017_train",),
    test=("coco_2017_val",),
    data_format="coco",
    primary_metric="bbox/AP",
    metrics=_COCO_METRICS,
    source=f"MoCo detection/configs/coco_R_50_C4_2x_moco.yaml with detectron2 mask_rcnn_R_50_C4_1x.yaml's 1x schedule (assumed); {_MOCO}",
    description="Mask R-CNN R50-C4, COCO train2017 -> val2017, 1x (90k iterations)",
))
register_task(Task(
    name="coco_2x",
    config="coco_2x.yaml",
    train=("coco_2017_train",),
    test=("coco_2017_val",),
    data_format="coco",
    primary_metric="bbox/AP",
    metrics=_COCO_METRICS,
    source=f"MoCo detection/configs/coco_R_50_C4_2x_moco.yaml; {_MOCO}",
    description="Mask R-CNN R50-C4, COCO train2017 -> val2017, 2x (180k iterations)",
))
register_task(Task(
    name="cityscapes",
    config="cityscapes.yaml",
    train=("cityscapes_fine_sem_seg_train",),
    test=("cityscapes_fine_sem_seg_val",),
    data_format="cityscapes",
    primary_metric="sem_seg/mIoU",
    metrics=("sem_seg/mIoU", "sem_seg/iIoU", "sem_seg/IoU_sup", "sem_seg/iIoU_sup"),
    source=("detectron2 projects/DeepLab deeplab_v3_R_103_os16_mg124_poly_90k_bs16.yaml on a ResNet-50 with the torchvision "
            "stem (assumed: the paper used mmsegmentation, Good_transfer#1)"),
    description="DeepLabV3 R50 OS16, Cityscapes fine train -> val, 90k iterations",
))
register_task(Task(
    name="imagenet_linear",
    config="imagenet_linear.yaml",
    train=("imagenet_train",),
    test=("imagenet_val",),
    data_format="imagenet",
    primary_metric="cls/top1",
    metrics=("cls/top1", "cls/top5"),
    source=("MoCo main_lincls.py (frozen backbone in eval mode, linear layer on pooled res5; assumed: Zhao et al. "
            "publish no readoff recipe)"),
    description="linear readoff: frozen ResNet-50, pooled res5 -> linear, ImageNet train -> val, 100 epochs",
))
register_task(Task(
    name="fewshot_miniimagenet",
    config="fewshot_miniimagenet.yaml",
    train=(),  # the backbone is frozen: episodes are drawn from the novel classes of test.csv only
    test=("miniimagenet_test",),
    data_format="miniimagenet",
    primary_metric="fewshot/1shot",
    metrics=("fewshot/1shot", "fewshot/5shot"),
    source=("Zhao et al. ICLR 2021 Table 4 setting; recipe of CloserLookFewShot's Baseline (baselinefinetune.py, "
            "Chen et al. ICLR 2019; assumed: the paper publishes none); --head rfs: RFS's logistic regression"),
    description="5-way 1-/5-shot on mini-ImageNet's 20 novel classes: frozen ResNet, linear head per episode, 600 episodes",
))
register_task(Task(
    name="mafl_landmarks",
    config="mafl_landmarks.yaml",
    train=("mafl_train",),
    test=("mafl_test",),
    data_format="mafl",
    primary_metric="landmarks/iod_error",
    metrics=("landmarks/iod_error",),
    lower_is_better=("landmarks/iod_error",),
    source=("Zhao et al. ICLR 2021 Table 5 setting; head of DVE's IntermediateKeypointPredictor on frozen features "
            "(assumed: the paper says only 'a two-layer network')"),
    description="5 MAFL landmarks on CelebA faces: frozen ResNet-50, soft-argmax keypoint head, error in % of eye distance",
))
