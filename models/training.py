"""Training shared by every experiment: Adam, optional weight decay and label smoothing.

Two entry points share one epoch loop (:func:`_fit`):

- :func:`train_model` for sets held as tensors ``(N, C, H, W)``: moved to the device once when
  they fit, batched with a seeded ``randperm`` (no per-sample DataLoader);
- :func:`train_model_on_dataset` for sets that do not fit in memory or need per-sample
  augmentation (e.g. Stanford Dogs with random crops and flips): a DataLoader with a seeded
  generator.

By default training runs in fp32 like the paper's code, with PyTorch's deterministic algorithms
where it has them (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN
deterministic, no cuDNN benchmark) for the duration of training: on CPU the same initial weights
and seed give identical trained weights. ``TrainConfig(amp=True)`` (the scripts' ``--amp``)
trains under bf16 autocast on CUDA and on CPU (fp16 with a GradScaler on GPUs without bf16);
``channels_last`` uses channels-last memory on CUDA. Each epoch shows a tqdm bar.
``TrainConfig(dp_epsilon=E)`` (the scripts' ``--dp_epsilon``) trains with DP-SGD instead
(:mod:`models.dp_training`, Opacus).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from utils.progress import bar_disabled
from utils.seeding import derive_seed, seeded

logger = logging.getLogger(__name__)

# The paper's Adam learning rates (experiment_utils.train: 0.001 for salem_cnn_relu, else 0.01).
DEFAULT_LR: dict[str, float] = {
    "resnet18": 0.01,
    "efficient_net": 0.01,
    "salem_cnn_relu": 0.001,
    "resnet50": 0.01,
    "small_cnn": 0.01,   # trained to overconfidence on digits, like the paper's CIFAR models
}
DEVICE_DATA_FRACTION = 0.5  # hold a tensor set on the GPU when it needs at most this share of free memory

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


DP_FIELDS = ("dp_epsilon", "dp_delta", "dp_max_grad_norm")   # TrainConfig's DP-SGD fields


class TrainingOverflowError(ValueError):
    """An optimiser step overflowed the weights' dtype (the learning rate is far too large)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (saved beside the checkpoint)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3              # Adam learning rate
    weight_decay: float = 0.0     # L2 penalty (Adam's weight_decay)
    label_smoothing: float = 0.0  # factor passed to nn.CrossEntropyLoss
    seed: int = 42
    amp: bool = False             # bf16 autocast on CUDA and CPU (fp16 + GradScaler on GPUs without bf16)
    channels_last: bool = False   # CUDA only: channels-last model and batches
    dp_epsilon: float | None = None  # DP-SGD target epsilon (models.dp_training); None: ordinary training
    dp_delta: float = 1e-5           # DP-SGD delta
    dp_max_grad_norm: float = 1.0    # DP-SGD per-sample gradient clipping norm

    def __post_init__(self):
        checks = {"epochs": self.epochs >= 0, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
                  "weight_decay": self.weight_decay >= 0, "label_smoothing": 0 <= self.label_smoothing < 1,
                  "dp_epsilon": self.dp_epsilon is None or (math.isfinite(self.dp_epsilon) and self.dp_epsilon > 0),
                  "dp_delta": 0 < self.dp_delta < 1, "dp_max_grad_norm": self.dp_max_grad_norm > 0}
        for name, valid in checks.items():
            if not valid:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is out of range "
                                 "(epochs >= 0, batch_size >= 1, lr > 0, weight_decay >= 0, "
                                 "0 <= label_smoothing < 1, dp_epsilon > 0 or None, 0 < dp_delta < 1, "
                                 "dp_max_grad_norm > 0)")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (reference models travel as dicts); unknown keys raise ``ValueError``."""
        unknown = set(data) - {field.name for field in fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {sorted(unknown)}; valid: "
                             f"{', '.join(field.name for field in fields(cls))}")
        return cls(**data)

    def to_dict(self) -> dict:
        """The fields; the DP-SGD ones only when ``dp_epsilon`` is set (ordinary checkpoints' records are unchanged)."""
        data = asdict(self)
        if self.dp_epsilon is None:
            for name in DP_FIELDS:
                del data[name]
        return data


@dataclass
class EpochLog:
    epoch: int
    loss: float
    accuracy: float
    epsilon: float | None = None   # DP-SGD runs: the accountant's epsilon spent after this epoch


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam over all parameters with ``config.lr`` and ``config.weight_decay``."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_loss(config: TrainConfig) -> nn.CrossEntropyLoss:
    """Cross-entropy with ``config.label_smoothing`` (0 means plain cross-entropy)."""
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def train_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                config: TrainConfig, device: torch.device | str = "cpu",
                desc: str = "train", progress: bool = True) -> list[EpochLog]:
    """Train ``model`` in place on ``images`` ``(N, C, H, W)`` and ``labels`` ``(N,)``.

    The set is moved to ``device`` once when it fits (at most :data:`DEVICE_DATA_FRACTION` of free
    GPU memory), otherwise batches are sliced on the host. Returns one :class:`EpochLog` per epoch.
    The batch order depends only on ``config.seed``.
    """
    if len(images) != len(labels):
        raise ValueError(f"{desc}: {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise ValueError(f"{desc}: the training set is empty")
    if config.dp_epsilon is not None:
        from models.dp_training import train_dp   # imports Opacus only for DP runs
        return train_dp(model, TensorDataset(images, labels), config, device, desc, progress)
    device = torch.device(device)
    if _fits_on_device(images.nelement() * images.element_size(), device):
        images, labels = images.to(device), labels.to(device)
    order_generator = torch.Generator().manual_seed(config.seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(images), generator=order_generator).to(images.device)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            yield images[batch], labels[batch]

    num_batches = -(-len(images) // config.batch_size)
    return _fit(model, batches, num_batches, config, device, desc, progress)


def train_model_on_dataset(model: nn.Module, dataset: Dataset, config: TrainConfig,
                           device: torch.device | str = "cpu", desc: str = "train",
                           progress: bool = True, num_workers: int = 0) -> list[EpochLog]:
    """Train ``model`` in place on a map-style ``dataset`` of ``(image (C, H, W), label)`` pairs.

    Batches come from a shuffling DataLoader whose generator is seeded with ``config.seed``, so
    the order and the worker seeds (hence random augmentations) are reproducible for a fixed
    ``num_workers``. Returns one :class:`EpochLog` per epoch.
    """
    if len(dataset) == 0:
        raise ValueError(f"{desc}: the training set is empty")
    if num_workers < 0:
        raise ValueError(f"{desc}: num_workers must be >= 0, got {num_workers}")
    if config.dp_epsilon is not None:
        from models.dp_training import train_dp   # imports Opacus only for DP runs
        return train_dp(model, dataset, config, device, desc, progress)
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed),
                        num_workers=num_workers, persistent_workers=num_workers > 0,
                        pin_memory=device.type == "cuda")
    return _fit(model, lambda: loader, len(loader), config, device, desc, progress)


def amp_dtype(device: torch.device | str) -> torch.dtype:
    """The autocast dtype of ``--amp`` on ``device``: bf16, or fp16 on a GPU without bf16."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def precision_name(amp: bool, device: torch.device | str) -> str:
    """What a model trained with ``amp`` on ``device`` is recorded as: ``"fp32"``,
    ``"amp-bf16"`` or ``"amp-fp16"``."""
    if not amp:
        return "fp32"
    return "amp-bf16" if amp_dtype(device) == torch.bfloat16 else "amp-fp16"


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """PyTorch's deterministic algorithms where it has them (``warn_only``: ops without one warn
    instead of failing), cuDNN deterministic and without benchmark; the previous settings return
    afterwards. Like the paper's scripts (``torch.set_deterministic(True)``, cuDNN flags), except
    that the paper skipped it for its label-smoothing runs; with ``warn_only`` it is on for all.
    Uninitialised memory is left unfilled (PyTorch fills it with NaN under deterministic algorithms
    by default, to expose kernels that read it; ours write every output, and the fill cost a fifth
    of a batched digits step)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (CUDA >= 10.2)
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]
        torch.utils.deterministic.fill_uninitialized_memory = previous[4]


def _fit(model: nn.Module, batches: Batches, num_batches: int, config: TrainConfig,
         device: torch.device, desc: str, progress: bool) -> list[EpochLog]:
    """The epoch loop (under :func:`deterministic_algorithms`); an optimiser step that overflows
    (a learning rate too large for the weights' dtype) is one :class:`TrainingOverflowError` line."""
    try:
        with deterministic_algorithms():
            return _epochs(model, batches, num_batches, config, device, desc, progress)
    except RuntimeError as error:
        if "overflow" not in str(error):
            raise
        raise TrainingOverflowError(f"{desc}: the optimiser overflowed ({str(error).splitlines()[0]}) with "
                                    f"learning rate {config.lr:g}; nothing was saved and any existing "
                                    f"checkpoint was kept; lower the learning rate (--lr)") from None


def _epochs(model: nn.Module, batches: Batches, num_batches: int, config: TrainConfig,
            device: torch.device, desc: str, progress: bool) -> list[EpochLog]:
    """The epoch loop: ``batches()`` yields ``(images, labels)`` for one epoch."""
    cuda = device.type == "cuda"
    dtype = amp_dtype(device)
    use_amp = config.amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cuda and dtype == torch.float16)
    channels_last = config.channels_last and cuda
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    optimizer, loss_fn = make_optimizer(model, config), make_loss(config)
    history: list[EpochLog] = []
    epochs_bar = tqdm(total=config.epochs, desc=desc, disable=bar_disabled(progress), leave=False)
    with seeded(derive_seed(config.seed, "train")), epochs_bar:  # dropout, augmentation (workers=0)
        for epoch in range(1, config.epochs + 1):
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            seen = 0
            for x, y in tqdm(batches(), total=num_batches, desc=f"{desc} epoch {epoch}/{config.epochs}",
                             disable=bar_disabled(progress), leave=False):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                autocast = (torch.autocast(device.type, dtype=dtype) if use_amp
                            else contextlib.nullcontext())
                with autocast:
                    logits = model(x)
                    loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total_loss += loss.detach().float() * len(y)  # no host sync inside the epoch
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
            history.append(EpochLog(epoch, total_loss.item() / seen, correct.item() / seen))
            epochs_bar.update()
            epochs_bar.set_postfix(loss=f"{history[-1].loss:.3f}", acc=f"{history[-1].accuracy:.3f}")
            logger.debug("%s epoch %d: loss %.4f, accuracy %.4f", desc, epoch, history[-1].loss,
                         history[-1].accuracy)
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


def _fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of data may live on ``device`` (always on CPU; a share of free GPU memory)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_DATA_FRACTION * free
