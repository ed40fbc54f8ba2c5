"""Training throughput (samples/s) of ``models.training`` in fp32 and with ``--amp``, against a plain loop.

    python benchmarks/training_throughput.py [--archs resnet18 ...] [--steps N] [--batch_size B]
                                             [--device auto|cpu|cuda] [--workers W]

For each architecture, at the paper's input size (32x32 for the CIFAR-10 models, 224x224 for
resnet50), both loops train copies of the same model for ``--steps`` steps on the same random data:

- ours fp32: ``train_model`` as the scripts run it by default (fp32 like the paper, deterministic
  algorithms; data held as one normalised tensor, on the device when it fits; no host sync inside
  an epoch);
- ours amp: the same with ``--amp`` (bf16 autocast on CUDA and CPU, fp16 + GradScaler on GPUs
  without bf16; channels-last on CUDA);
- baseline: a DataLoader over a Dataset that converts and normalises each uint8 image on access,
  fp32, ``loss.item()`` every step (the usual tutorial loop, as in the paper's code).

Each loop first runs ``--warmup`` steps that are not timed. Ratios are against the baseline.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import copy  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from models import build_model  # noqa: E402
from models.training import TrainConfig, train_model  # noqa: E402
from utils.devices import resolve_device  # noqa: E402

ARCHS = ("resnet18", "efficient_net", "salem_cnn_relu", "resnet50")
IMAGE_SIZE = {"resnet50": 224}   # paper's input size; 32 for the others
NUM_CLASSES = {"resnet50": 120}  # Stanford Dogs; 10 (CIFAR-10) for the others
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class PerSampleDataset(Dataset):
    """uint8 images ``(N, 3, H, W)`` converted to normalised float one sample at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div(255)
        return (image - self.mean) / self.std, int(self.labels[index])


def normalise(images: torch.Tensor) -> torch.Tensor:
    """The whole uint8 set ``(N, 3, H, W)`` as normalised float32, once."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float().div(255) - mean) / std


def time_ours(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
              warmup: int, device: torch.device, amp: bool = False) -> float:
    """Samples/s of ``train_model`` (fp32, or ``amp``) for one epoch over ``images``, after
    ``warmup`` steps."""
    data = normalise(images)
    config = TrainConfig(epochs=1, batch_size=batch_size, amp=amp, channels_last=amp)
    if warmup:
        n = min(len(data), warmup * batch_size)
        train_model(model, data[:n], labels[:n], config, device, progress=False)
    start = time.perf_counter()
    train_model(model, data, labels, config, device, progress=False)
    return len(data) / (time.perf_counter() - start)


def time_baseline(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  warmup: int, device: torch.device, workers: int) -> float:
    """Samples/s of a plain fp32 DataLoader loop over ``images``, after ``warmup`` steps."""
    loader = DataLoader(PerSampleDataset(images, labels), batch_size=batch_size, shuffle=True,
                        num_workers=workers, pin_memory=device.type == "cuda")
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def run(max_steps: int) -> int:
        seen = 0
        for step, (x, y) in enumerate(loader):
            if step == max_steps:
                break
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            loss.item()
            seen += len(y)
        return seen

    run(warmup)
    start = time.perf_counter()
    seen = run(len(loader))
    return seen / (time.perf_counter() - start)


def benchmark(arch: str, steps: int, batch_size: int, warmup: int, device: torch.device,
              workers: int) -> tuple[float, float, float]:
    """(ours fp32, ours amp, baseline) samples/s for ``arch`` on random data of ``steps * batch_size`` images."""
    size, classes = IMAGE_SIZE.get(arch, 32), NUM_CLASSES.get(arch, 10)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (steps * batch_size, 3, size, size), dtype=torch.uint8,
                           generator=generator)
    labels = torch.randint(0, classes, (len(images),), generator=generator)
    torch.manual_seed(0)
    model = build_model(arch, num_classes=classes, in_channels=3, image_size=size)
    baseline = time_baseline(copy.deepcopy(model), images, labels, batch_size, warmup, device, workers)
    fp32 = time_ours(copy.deepcopy(model), images, labels, batch_size, warmup, device)
    amp = time_ours(copy.deepcopy(model), images, labels, batch_size, warmup, device, amp=True)
    return fp32, amp, baseline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS, metavar="ARCH",
                        help=f"architectures to time (default: all of {', '.join(ARCHS)})")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed training steps per loop (default: 50 on CUDA, 2 on CPU)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="batch size (default: 64, the paper's, on CUDA; on CPU 32, and 4 for resnet50)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default: 5 on CUDA, 1 on CPU)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers of the baseline (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:0 (default: auto)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (50 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if steps < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--steps and --batch_size must be at least 1")

    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; {steps} timed steps, {warmup} warm-up")
    print(f"{'arch':<16}{'size':>6}{'batch':>7}{'fp32/s':>10}{'amp/s':>10}{'baseline/s':>12}"
          f"{'fp32 ratio':>12}{'amp ratio':>11}")
    for arch in args.archs:
        batch_size = args.batch_size or (64 if cuda else 4 if arch == "resnet50" else 32)
        fp32, amp, baseline = benchmark(arch, steps, batch_size, warmup, device, args.workers)
        print(f"{arch:<16}{IMAGE_SIZE.get(arch, 32):>6}{batch_size:>7}{fp32:>10.1f}{amp:>10.1f}{baseline:>12.1f}"
              f"{fp32 / baseline:>12.2f}{amp / baseline:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
