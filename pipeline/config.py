"""One experiment's configuration, and per-data-set defaults held as data (not copied scripts)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from utils import naming

# Non-member rows that perturb the Original non-members rather than load another set.
DERIVED_SETS = ("original", "permuted", "scaled", "no_normalization", "noise")
MAX_SEED = 2**32 - 1  # largest seed NumPy's legacy RandomState and scikit-learn accept
TEMP_FITS = ("paper", "held_out")  # --temp_fit choices

# Row name of each non-member set in the result tables: the paper's CIFAR-10 script's labels
# (``write_results_to_csv(..., row_label=...)``); presets override them (``DatasetPreset.row_names``).
ROW_NAMES: dict[str, str] = {
    "original": "Original", "permuted": "Permuted", "scaled": "Scaled",
    "no_normalization": "No Normalization", "noise": "Noise", "stl10": "STL-10",
    "cifar100": "CIFAR100", "svhn": "SVHN", "stanford_dogs": "Stanford Dogs",
    "fake_cifar10": "Fake CIFAR-10", "afhq_dogs": "AFHQ Dogs", "afhq_cats": "AFHQ Cats",
    "afhq_wild": "AFHQ Wilds", "afhq_nondogs": "AFHQ NonDogs", "fake_dogs": "Fake Dogs",
    "sample_photos": "Photo Patches", "fake_digits": "Fake", "cifar10": "CIFAR-10", "digits": "Digits",
}


@dataclass(frozen=True)
class DatasetPreset:
    """Defaults for experiments whose target is trained on ``dataset``."""

    dataset: str                      # registry key of the training data
    model_arch: str
    epochs: int
    batch_size: int
    train_set_size: int
    test_set_size: int
    attack_set_size: int
    label_smoothing_factor: float
    weight_decay: float               # value of the paper's L2 runs (off by default)
    temp_value: float                 # value of the paper's temperature run
    sets: tuple[str, ...]             # default non-member rows, in table order
    train_pool: str                   # published split the train (and, if one pool, test) splits come from
    test_pool: str | None             # published split of the test splits; None: cut from train_pool
    train_if_missing: bool = False    # no checkpoint and no --train: train (True) or ask for one
    augment_train: bool = False       # train on the set's random training transform (per-sample loader)
    protocol: str = "package"         # who draws splits and subsets: "package", or the paper's script
                                      # ("paper_cifar10", "paper_stanford_dogs"; pipeline.paper_splits)
    row_names: tuple[tuple[str, str], ...] = ()  # (set key, row name) where the paper's script differs


PRESETS: dict[str, DatasetPreset] = {
    "digits": DatasetPreset(
        dataset="digits", model_arch="small_cnn", epochs=60, batch_size=32,
        train_set_size=400, test_set_size=400, attack_set_size=200,
        label_smoothing_factor=0.1, weight_decay=3e-4, temp_value=10.0,
        sets=("original", "permuted", "scaled", "no_normalization", "noise", "sample_photos",
              "fake_digits"),
        train_pool="all", test_pool=None, train_if_missing=True),
    "cifar10": DatasetPreset(
        dataset="cifar10", model_arch="resnet18", epochs=100, batch_size=64,
        train_set_size=12_500, test_set_size=5_000, attack_set_size=2_500,
        label_smoothing_factor=0.0083, weight_decay=3e-4, temp_value=10.0,
        sets=("original", "permuted", "scaled", "no_normalization", "stl10", "cifar100", "svhn",
              "stanford_dogs", "fake_cifar10", "afhq_dogs", "afhq_cats"),
        train_pool="train", test_pool="test", protocol="paper_cifar10"),
    "stanford_dogs": DatasetPreset(
        dataset="stanford_dogs", model_arch="resnet50", epochs=100, batch_size=64,
        train_set_size=8_232, test_set_size=2_058, attack_set_size=2_058,
        label_smoothing_factor=0.1, weight_decay=1e-3, temp_value=10.0,
        sets=("original", "fake_dogs", "afhq_dogs", "afhq_cats", "afhq_wild", "afhq_nondogs",
              "permuted", "scaled", "no_normalization"),  # the paper's Stanford Dogs row order
        train_pool="all", test_pool=None,  # the paper pooled all 20,580 images
        augment_train=True, protocol="paper_stanford_dogs",
        row_names=(("afhq_dogs", "AFHQ-Dogs"), ("afhq_cats", "AFHQ-Cats"), ("afhq_wild", "AFHQ-Wilds"),
                   ("afhq_nondogs", "AFHQ-NonDogs"))),
}


def row_name(dataset: str, key: str, built_name: str | None = None) -> str:
    """The result-table row name of non-member set ``key`` in an experiment on ``dataset``.

    The preset's own spelling first (the paper's Stanford Dogs script writes ``AFHQ-Dogs`` where
    its CIFAR-10 script writes ``AFHQ Dogs``), then :data:`ROW_NAMES`, then the name the set's
    builder gave it (``built_name``), then the key itself.
    """
    preset = PRESETS.get(dataset)
    overrides = dict(preset.row_names) if preset else {}
    return overrides.get(key) or ROW_NAMES.get(key) or built_name or key


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run; saved in its manifest."""

    dataset: str = "digits"
    model_arch: str = PRESETS["digits"].model_arch
    epochs: int = PRESETS["digits"].epochs
    lr: float | None = None               # None: the architecture's default learning rate
    batch_size: int = PRESETS["digits"].batch_size
    train_set_size: int = PRESETS["digits"].train_set_size
    test_set_size: int = PRESETS["digits"].test_set_size
    attack_set_size: int = PRESETS["digits"].attack_set_size
    salem_k: int = 3
    attacks: tuple[str, ...] = ("threshold", "salem", "entropy", "shokri")
    label_smoothing: bool = False
    label_smoothing_factor: float = PRESETS["digits"].label_smoothing_factor
    weight_decay: float = 0.0
    llla: bool = False
    llla_impl: str = "paper"              # "paper" (its own KFAC LLLA) or "laplace" (laplace-torch)
    llla_prior: str | None = None         # None: the implementation's default ("ood_grid" / "gridsearch")
    temp_scaling: bool = False
    temp_value: float | None = None       # None with --temp_scaling: fit T by NLL
    temp_fit: str = "paper"               # "paper": LBFGS on attack non-members; "held_out": bounded search
    amp: bool = False                     # --amp: train with bf16 autocast (default fp32, as the paper)
    verify_checksums: bool = True         # False (--no_verify): accept data whose checksums differ
    pretrained: bool = False              # ImageNet initialisation (resnet50)
    seed: int = 42
    sets: tuple[str, ...] = PRESETS["digits"].sets
    results_dir: str = "experiments/results"
    pretrained_dir: str = "pretrained_models"
    data_root: str = "data"
    device: str = "auto"
    train: bool = False                   # retrain even when a matching checkpoint exists
    strict: bool = False                  # missing non-member data is an error, not a skip
    download: bool = False
    allow_pickle: bool = False
    generator_pkl: str | None = None
    stylegan_repo: str | None = None      # checkout providing dnnlib/torch_utils for the pickles
    cache_scores: bool = True
    progress: bool = True
    figures: bool = True
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def training_modifier(self) -> str:
        """File-name modifier of the training variant (names checkpoints; calibration is post-hoc)."""
        return naming.training_modifier(self.label_smoothing_factor if self.label_smoothing else None,
                                        self.weight_decay)

    def run_modifier(self) -> str:
        """The paper's result-file modifier of the run: training variant, then calibration
        (``temp_calib_`` for a fitted temperature, ``temp_{T}_calib_`` for ``--temp_value T``)."""
        return naming.result_modifier(
            label_smoothing_factor=self.label_smoothing_factor if self.label_smoothing else None,
            weight_decay=self.weight_decay, llla=self.llla, temp_scaling=self.temp_scaling,
            temperature=self.temp_value if self.temp_scaling else None, llla_impl=self.llla_impl)

    def run_stem(self) -> str:
        """The result-file stem of the run, e.g. ``resnet18_cifar10_LS_0.0083_``."""
        return naming.result_stem(self.model_arch, self.dataset, self.run_modifier())


def config_from_preset(dataset: str, **overrides) -> ExperimentConfig:
    """A config with ``dataset``'s preset defaults, then ``overrides`` (``None`` values ignored)."""
    if dataset not in PRESETS:
        raise ValueError(f"unknown experiment data set {dataset!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[dataset]
    base = {name: getattr(preset, name) for name in (
        "model_arch", "epochs", "batch_size", "train_set_size", "test_set_size", "attack_set_size",
        "label_smoothing_factor", "sets")}
    names = {f.name for f in fields(ExperimentConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown config option(s) {', '.join(sorted(unknown))}")
    base.update({key: value for key, value in overrides.items() if value is not None})
    return ExperimentConfig(dataset=dataset, **base)


def validate_config(config: ExperimentConfig) -> None:
    """Check user-facing values; raise ValueError naming the flag and what to do."""
    positive = ("epochs", "batch_size", "train_set_size", "test_set_size", "attack_set_size", "salem_k")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(config, name)}")
    if config.attack_set_size > config.train_set_size:
        raise ValueError(f"--attack_set_size {config.attack_set_size} is larger than --train_set_size "
                         f"{config.train_set_size} (members are drawn from the target's training split)")
    if config.attack_set_size > config.test_set_size:
        raise ValueError(f"--attack_set_size {config.attack_set_size} is larger than --test_set_size "
                         f"{config.test_set_size} (Original non-members come from the test split)")
    for name in ("weight_decay", "label_smoothing_factor"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"--{name} must be a non-negative number, got {value}")
    if config.label_smoothing and not 0 < config.label_smoothing_factor < 1:
        raise ValueError(f"--label_smoothing_factor must be in (0, 1), got {config.label_smoothing_factor}")
    if config.temp_value is not None and not (math.isfinite(config.temp_value) and config.temp_value > 0):
        raise ValueError(f"--temp_value must be a positive number, got {config.temp_value}")
    if config.temp_fit not in TEMP_FITS:
        raise ValueError(f"--temp_fit must be one of {', '.join(TEMP_FITS)}, got {config.temp_fit!r}")
    if config.llla and config.temp_scaling:
        raise ValueError("--llla and --temp_scaling are alternative calibrations; pass only one")
    from calibration.factory import llla_prior_choice

    llla_prior_choice(config.llla_impl, config.llla_prior)
    if config.lr is not None and not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"--lr must be a positive finite number, got {config.lr}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"--seed must be in [0, 2**32 - 1] (NumPy and scikit-learn seeds), got {config.seed}")
    image_size = config.options.get("model_input_image_size")
    if image_size is not None and not (isinstance(image_size, int) and image_size > 0):
        raise ValueError(f"--model_input_image_size must be a positive integer, got {image_size}")
    if not config.sets:
        raise ValueError("--sets is empty; name at least one non-member set")
    from attacks import ATTACK_NAMES

    for attack in config.attacks:
        if attack not in ATTACK_NAMES:
            raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACK_NAMES)}")
