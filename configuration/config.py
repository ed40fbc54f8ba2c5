"""One experiment's configuration, and per-data-set defaults held as data (not copied scripts)."""
from __future__ import annotations

import math
from functools import cached_property
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from attacks import ATTACKS, attack_options, default_attack_names
from calibration import CalibrationSpec, calibration_spec, spec_modifier
from calibration.factory import calibration_options, check_spec
from datasets import presets
from datasets.domain import Domain
from datasets.registry import GeneratedSizes, set_declaration
from utils import naming
from utils.options import check_value, field_options, option

MAX_SEED = 2**32 - 1  # largest seed NumPy's legacy RandomState and scikit-learn accept
PRESETS = presets.PRESETS   # training data set -> its declaration (datasets.presets)


def row_name(dataset: str, key: str, built_name: str | None = None) -> str:
    """The result-table row name of non-member set ``key`` in an experiment on ``dataset``.

    The preset's own spelling first (the paper's Stanford Dogs script writes ``AFHQ-Dogs`` where
    its CIFAR-10 script writes ``AFHQ Dogs``), then the set's declared display name
    (:class:`datasets.registry.SetDeclaration`), then the name the set's builder gave it
    (``built_name``), then the key itself.
    """
    declared = set_declaration(key)   # loads every declaration, the data set modules' presets too
    preset = PRESETS.get(dataset)
    overrides = dict(preset.row_names) if preset else {}
    return overrides.get(key) or (declared.display_name if declared else None) or built_name or key


def domain_for(config: "ExperimentConfig") -> Domain:
    """The input domain of the target trained on ``config.dataset`` (its declaration's)."""
    return config.preset.domain(Path(config.data_root), config.model_input_image_size)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run; saved in its manifest.

    Each user option is declared here once (:func:`utils.options.option`: default and help text) and
    the scripts' flags are generated from these declarations (:mod:`configuration.cli`); ``preset=True``
    options take their default from the data set's :class:`datasets.presets.DatasetPreset`. The attacks' options live
    in ``attack_params`` and the calibration in ``calibration``, both declared by their packages.
    """

    dataset: str = "digits"
    train: bool = option(False, "train target and shadow and replace their checkpoints (without it, existing "
                                "checkpoints are loaded and must have been trained with the same flags)",
                         action="store_true")
    pretrained: bool = option(False, "initialise from ImageNet weights (resnet50)", action="store_true")
    seed: int = option(42, "fixes the splits ({splits}; indices written to {{stem}}splits.npz), training and "
                           "generated data (default {default})")
    model_arch: str = option(PRESETS["digits"].model_arch, "architecture (default {default})", preset=True)
    epochs: int = option(PRESETS["digits"].epochs, "training epochs (default {default})", preset=True)
    lr: float | None = option(None, "Adam learning rate (default: the architecture's)", type=float)
    train_set_size: int = option(PRESETS["digits"].train_set_size,
                                 "training samples per model (default {default}){fixed}", preset=True)
    test_set_size: int = option(PRESETS["digits"].test_set_size, "test samples per model (default {default}){fixed}",
                                preset=True)
    batch_size: int = option(PRESETS["digits"].batch_size, "batch size (default {default})", preset=True)
    model_input_image_size: int | None = option(None, "input image size of the model (default: the data set's)",
                                                type=int)
    attack_set_size: int = option(PRESETS["digits"].attack_set_size,
                                  "members and non-members per attack set (default {default}){fixed}", preset=True)
    label_smoothing: bool = option(False, "train with label smoothing", action="store_true")
    label_smoothing_factor: float = option(PRESETS["digits"].label_smoothing_factor,
                                           "label smoothing factor (default {default})", preset=True)
    weight_decay: float = option(0.0, "L2 weight decay (default 0; the paper's L2 runs use {preset.weight_decay})")
    amp: bool = option(False, "train with bf16 autocast (CUDA and CPU; scoring stays fp32); default fp32 like the "
                              "paper. Recorded in the manifest and the checkpoint's JSON; loading a checkpoint "
                              "needs the same choice", action="store_true")
    dp_epsilon: float | None = option(None, "train target, shadow and reference models with DP-SGD (Opacus) to this "
                                            "epsilon; the noise multiplier comes from the RDP accountant for the "
                                            "run's epochs and sampling rate (default: off)", type=float)
    dp_delta: float = option(1e-5, "delta of --dp_epsilon and of the epsilon lower bounds (default {default})")
    dp_max_grad_norm: float = option(1.0, "DP-SGD per-sample gradient clipping norm (default {default})")
    attacks: tuple[str, ...] = option(default_attack_names(), "attacks to run: {attack_names} (default: {default}; "
                                      "--reference_models K adds {with_reference}; lira and rmia need it)", nargs="+", type=str)
    reference_models: int = option(0, "K reference models for LiRA and RMIA, trained in batched chunks (one worker "
                                      "process per CPU, one chunk per GPU), each on as many rows as the target; every "
                                      "in-distribution row is IN for K/4 of them on the presets' splits, so K >= 4 "
                                      "(default {default}; 0 = off)", preset="cli")
    ray_address: str | None = option(None, "train the reference models on this running Ray cluster (host:port) "
                                           "instead of this machine", type=str)
    pool_backend: str = option("auto", "where the reference pool trains: auto (default: worker processes on two or "
                                       "more CPUs or GPUs, else this process; --ray_address: that cluster), here (this "
                                       "process), processes (local worker processes), ray (a local Ray cluster, or "
                                       "--ray_address)", choices=("auto", "here", "processes", "ray"))
    pool_workers: int = option(0, "workers of the reference pool (default {default}: one per CPU, one per GPU with "
                                  "CUDA; 1: in this process)", minimum=0)
    pool_chunk_size: int = option(0, "reference models trained together as one batched model (default {default}: "
                                     "as many as fit in a quarter of the device's memory, at most 64; 1: one model "
                                     "per step)", minimum=0)
    sets: tuple[str, ...] = option(PRESETS["digits"].sets, "non-member rows to run (default: {default})",
                                   nargs="+", type=str, preset=True)
    data_root: str = option("data", "folder holding the data sets (default data/)")
    results_dir: str = option("experiments/results", "where CSVs, figures and report go")
    pretrained_dir: str = option("pretrained_models", "checkpoint folder")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    strict: bool = option(False, "fail instead of skipping non-member sets with missing data", action="store_true")
    download: bool = option(False, "download missing data sets (needs the network)", action="store_true")
    verify_checksums: bool = option(True, "accept data files or folders whose checksums differ from the published "
                                          "ones (a warning names each; the manifest lists them); default: such data "
                                          "is an error. Pickle-format data (the CIFAR batches) is read with an "
                                          "arrays-only unpickler either way: no code from it runs",
                                    flag="--no_verify", action="store_false")
    generator_pkl: str | None = option(None, "StyleGAN2-ADA generator pickle for the Fake sets", type=str)
    stylegan_repo: str | None = option(None, "stylegan2-ada-pytorch checkout (dnnlib, torch_utils) needed to "
                                             "unpickle its generators", type=str)
    allow_pickle: bool = option(False, "allow unpickling --generator_pkl (unpickling runs code from the file: "
                                       "trust it first); data sets never need it (the CIFAR batches are read "
                                       "with an arrays-only unpickler)", action="store_true")
    cache_scores: bool = option(True, "recompute scores instead of reading the score cache", flag="--no_cache",
                                action="store_false")
    figures: bool = option(True, "write tables only", flag="--no_figures", action="store_false")
    progress: bool = option(True, "no progress bars", flag="--quiet", action="store_false")
    verbose: bool = option(False, "also print the full tables at the end, and Ray's own start-up warnings and "
                                  "worker logs (default: only its errors; the rest stays in Ray's session logs)",
                           action="store_true")
    attack_params: dict = field(default_factory=lambda: {o.name: o.default for o in attack_options()})
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    sizes: GeneratedSizes = field(default_factory=GeneratedSizes)  # generated sets' sizes (tests: small)

    def to_dict(self) -> dict:
        return asdict(self)

    @cached_property
    def preset(self) -> "presets.DatasetPreset":
        """The declaration of ``dataset`` (:func:`datasets.presets.preset_for`), read once and carried
        with the config through every stage."""
        return presets.preset_for(self.dataset)

    def __getstate__(self) -> dict:
        """Pickled without the carried preset (it holds functions); it is read again where needed."""
        state = dict(self.__dict__)
        state.pop("preset", None)
        return state

    def training_modifier(self) -> str:
        """File-name modifier of the training variant (names checkpoints; calibration is post-hoc)."""
        return naming.training_modifier(self.label_smoothing_factor if self.label_smoothing else None,
                                        self.weight_decay, self.dp_epsilon)

    def run_modifier(self) -> str:
        """The paper's result-file modifier of the run: training variant, then calibration
        (``LLLA_``, ``temp_calib_`` for a fitted temperature, ``temp_{T}_calib_`` for ``--temp_value T``)."""
        return self.training_modifier() + spec_modifier(self.calibration)

    def run_stem(self) -> str:
        """The result-file stem of the run, e.g. ``resnet18_cifar10_LS_0.0083_``."""
        return naming.result_stem(self.model_arch, self.dataset, self.run_modifier())

    @property
    def calibrated(self) -> bool:
        """Whether a calibration other than the plain softmax is applied."""
        return self.calibration.method != "softmax"


def config_from_preset(dataset: str, **values) -> ExperimentConfig:
    """A config with ``dataset``'s preset defaults, then option ``values`` (``None`` values ignored).

    ``values`` are keyed by option name, as the flags are: config fields (``epochs``), attack
    options (``salem_k``) and calibration options (``llla``, ``temp_value``).
    """
    preset = presets.preset_for(dataset)
    fields_ = {f.name for f in fields(ExperimentConfig)} - {"dataset", "attack_params", "calibration"}
    attack = {o.name: o for o in attack_options()}
    unknown = set(values) - fields_ - set(attack) - {o.name for o in calibration_options()}
    if values.get("attacks") is None and values.get("reference_models"):
        values = {**values, "attacks": default_attack_names(values["reference_models"])}
    if unknown:
        raise ValueError(f"unknown config option(s) {', '.join(sorted(unknown))}")
    given = {key: value for key, value in values.items() if value is not None}
    base = {o.name: getattr(preset, o.name) for o in field_options(ExperimentConfig) if o.preset is True}
    base.update({key: value for key, value in given.items() if key in fields_})
    return ExperimentConfig(dataset=dataset, **base,
                            attack_params={name: given.get(name, o.default) for name, o in attack.items()},
                            calibration=calibration_spec(given))


def validate_config(config: ExperimentConfig) -> None:
    """Check user-facing values; raise ValueError naming the flag and what to do."""
    positive = ("epochs", "batch_size", "train_set_size", "test_set_size", "attack_set_size")
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
    check_spec(config.calibration)
    _validate_dp(config)
    if config.lr is not None and not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"--lr must be a positive finite number, got {config.lr}")
    if not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"--seed must be in [0, 2**32 - 1] (NumPy and scikit-learn seeds), got {config.seed}")
    image_size = config.model_input_image_size
    if image_size is not None and not (isinstance(image_size, int) and image_size > 0):
        raise ValueError(f"--model_input_image_size must be a positive integer, got {image_size}")
    if not config.sets:
        raise ValueError("--sets is empty; name at least one non-member set")
    for attack in config.attacks:
        if attack not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
        for declared in ATTACKS[attack].params:
            check_value(declared, config.attack_params.get(declared.name, declared.default))
        ATTACKS[attack].build(config.attack_params, seed=0)   # the constructor's own checks, before any work
    _validate_reference_models(config)


def _validate_dp(config: ExperimentConfig) -> None:
    if config.dp_epsilon is not None and not (math.isfinite(config.dp_epsilon) and config.dp_epsilon > 0):
        raise ValueError(f"--dp_epsilon must be a positive finite number (e.g. 8), got {config.dp_epsilon}")
    if not (math.isfinite(config.dp_delta) and 0 < config.dp_delta < 1):
        raise ValueError(f"--dp_delta must be in (0, 1) (e.g. 1e-5, below 1 / training set size), got {config.dp_delta}")
    if not (math.isfinite(config.dp_max_grad_norm) and config.dp_max_grad_norm > 0):
        raise ValueError(f"--dp_max_grad_norm must be a positive number, got {config.dp_max_grad_norm}")
    if config.dp_epsilon is not None and config.amp:
        raise ValueError("--dp_epsilon cannot be combined with --amp (DP-SGD's per-sample gradients are fp32); "
                         "drop one of them")


def _validate_reference_models(config: ExperimentConfig) -> None:
    k = config.reference_models
    if not isinstance(k, int) or k < 0 or k == 1:
        raise ValueError(f"--reference_models must be 0 (off) or at least 2 (an IN and an OUT model per "
                         f"sample), got {k}")
    named = [attack for attack in config.attacks if ATTACKS[attack].needs_reference_models]
    if named and not k:
        raise ValueError(f"--attacks {' '.join(named)} needs reference models; add --reference_models K "
                         f"(K >= 2, e.g. 8)")
    if config.ray_address and not k:
        raise ValueError("--ray_address is only used to train reference models; add --reference_models K")
    if named and config.attack_set_size >= config.test_set_size:
        raise ValueError(f"--attacks {' '.join(named)}: RMIA's population and the held-out set need test "
                         f"rows beyond the attack set; make --test_set_size larger than --attack_set_size")
