"""Task name -> protocol: the registry (pure Python) and, in sub-modules, what needs detectron2.

    registry.py    Task, register_task, get_task, list_tasks (importing it imports no torch)
    builtin.py     the registered tasks: voc07, voc0712, coco, coco_2x, cityscapes, imagenet_linear
    config.py      build_config: protocol + smoke overlay + weights settings + options -> CfgNode
    modeling.py    model pieces registered with detectron2 (Res5ROIHeadsExtraNorm)
    classification.py  the linear readoff's model (LinearClassifier); its evaluator is the imagenet family's
    evaluation.py  build_evaluator: the task's family's evaluator, with TIDE's breakdown for detection
"""
from benchmark.tasks import builtin  # noqa: F401  (registers the tasks)
from benchmark.tasks.registry import CONFIG_DIR, Task, UnknownTaskError, get_task, list_tasks, register_task  # noqa: F401
