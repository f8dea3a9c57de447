"""The authors' recipe as the command's settings, and the choices it offers; imports no torch (the CLI's
--help and argument checks stay fast)."""
import dataclasses
import math

LAYERS = ("res2", "res3", "res4", "res5", "pooled")  # layer1..4, avgpool [Good_transfer:customized_resnet.py]
SCALE = 64  # the generator halves its input six times (generator.CHANNELS_DOWN has six levels)
RECORD_KIND = "analysis"
TASK_PREFIX = "inversion_"  # a record's task: inversion_<layer>
FIGURE_NAME = "grid.png"  # the grid figure, in the folder above each checkpoint's records (run.py's layout)
MIN_NOISE = 2 * SCALE  # the deepest level is noise / 64 wide; BatchNorm in training mode needs > 1 value


@dataclasses.dataclass(frozen=True)
class Settings:
    """The recipe; each default is the authors' [Good_transfer:reconstruction.py, readme]."""
    layer: str = "res5"  # --which_layer layer4 (the paper's figure)
    steps: int = 3001  # --max_iter 3000; its `while n_iter <= max_iter` loop takes 3,001 Adam steps
    lr: float = 1e-3  # --lr 0.001
    resize: int = 256  # Resize(256) (initial_size)
    crop: int = 224  # CenterCrop(224) (img_size); the output's top-left 224 crop
    noise_size: int = 256  # get_noise(32, imsize_net=256)
    seed: int = 0  # [suite:the authors seed nothing; every draw here is a function of it]

    def check(self) -> None:
        """ValueError naming the option, before anything is computed or written."""
        if self.layer not in LAYERS:
            raise ValueError(f"--layer {self.layer!r}: expected one of {', '.join(LAYERS)}")
        for name in ("steps", "resize", "crop"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} {getattr(self, name)}: must be at least 1")
        if not 0 <= self.seed < 2**32:  # run_transfer's range; torch took -1 and failed on 10**23 mid-run
            raise ValueError(f"--seed {self.seed}: must be in 0..2**32-1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr {self.lr}: must be a positive number")
        if self.crop > self.resize:
            raise ValueError(f"--crop {self.crop} is larger than --resize {self.resize}")
        if self.noise_size % SCALE or self.noise_size < max(self.crop, MIN_NOISE):
            raise ValueError(f"--noise-size {self.noise_size}: must be a multiple of {SCALE}, at least {MIN_NOISE} "
                             f"and at least --crop {self.crop}")

    def deviations(self) -> list:
        recipe = Settings(layer=self.layer, seed=self.seed)
        return [f"{f.name} {getattr(self, f.name)} (the authors' recipe: {getattr(recipe, f.name)})"
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(recipe, f.name)]

    @property
    def task(self) -> str:
        return f"{TASK_PREFIX}{self.layer}"


