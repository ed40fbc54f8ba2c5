"""Training a chunk of same-architecture models as one batched model.

The K models' parameters lie in one ``(K, P)`` tensor (row k: model k's, one parameter after
another). One step computes every model's loss on its own batch of its own rows and the gradients
of all of them at once: on the grouped network of :mod:`models.grouped` (one grouped convolution or
batched matrix product per layer, channels-last; the digits CNN and any model built from its kinds
of layers), else as ``vmap(grad(loss))`` over the stacked parameters (:mod:`torch.func`). Then one
fused ``torch.optim.Adam`` over the K rows (L2 weight decay added to the gradient, as
:func:`models.training.make_optimizer`) updates each row as that model's own optimiser would: Adam
is element-wise and keeps its step count and moments per row. So model k follows the same
trajectory as :func:`models.training.train_model` on its rows with its recipe (initialisation from
its seed, batch order from ``torch.randperm`` with its recipe's seed), up to float rounding.

Training sets of different sizes are handled exactly, with per-model loss weights: at step s
every model gets batch s of its own epoch. When all these batches are full (most steps) the loss is
the plain mean; when some are shorter (an epoch's last batch), each is padded to the full batch
size with its own first row (so a model's padded step does not depend on the other models) and the
per-sample losses are weighted ``1 / length`` on the model's own rows and 0 on the padding, which
is that model's mean over exactly its batch. A model whose epoch has fewer batches than the
chunk's longest sits out the remaining steps (no gradient: no parameter, moment or step-count
update). So every model sees exactly the batches, and takes exactly the Adam steps, that it takes
when trained alone, and every step of the chunk is one batched call. ``--amp`` recipes run the step
under bf16 autocast, as :func:`models.training.train_model` does. Models with buffers (BatchNorm)
or dropout, DP-SGD recipes and ``--amp`` in fp16 are not batched (:func:`batchable`); the caller
trains them one per step.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from models.grouped import groupable, grouped_logits, grouped_matches, grouped_network
from models.training import TrainConfig, amp_dtype, deterministic_algorithms

MAX_CHUNK = 64                    # models per batched step at most (beyond it steps stop getting cheaper)
CPU_STEP_FLOP_LIMIT = 5e8          # on CPU, models whose training step costs more train one per step: batching
                                  # pays for the digits CNN (~0.07 GFLOP per step: 1.8x) but not for
                                  # salem_cnn_relu on 32x32 (~1.6 GFLOP, where one model's step already runs
                                  # near the core's peak: 8.6 s one per step vs 10.6 s batched, K = 8, 5 epochs)
MEMORY_FRACTION = 0.25            # share of the device's total memory one chunk may plan to use


def batchable(model: nn.Module, recipe: TrainConfig, device: torch.device | str = "cpu") -> str | None:
    """None when ``model`` can be trained stacked on ``device``; else why not (one phrase). ``--amp``
    recipes batch under bf16 autocast; where ``--amp`` means fp16 (a GPU without bf16, which needs a
    gradient scaler) they train one per step."""
    if any(True for _ in model.buffers()):
        return "it has buffers (BatchNorm)"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        return "it has dropout"
    if recipe.amp and amp_dtype(device) != torch.bfloat16:
        return "--amp in fp16 (a gradient scaler per model)"
    if recipe.dp_epsilon is not None:
        return "DP-SGD (--dp_epsilon): per-sample clipping and noise, one model per step"
    return None


def step_flops(model: nn.Module, sample: torch.Tensor, batch_size: int) -> int:
    """FLOPs of one training step (forward and backward) of ``model`` on ``batch_size`` copies of
    ``sample`` ``(C, H, W)`` (torch's flop counter: a property of the architecture, not a timing)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = sample[None].float().expand(batch_size, *sample.shape)
    with FlopCounterMode(display=False) as counter:
        model(batch).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def chunk_size(model: nn.Module, sample: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
               available: int | None = None) -> int:
    """Models per batched step: what fits in :data:`MEMORY_FRACTION` of the device's total memory
    (``available``: that many bytes instead).

    Per model: parameters, gradients and two Adam moments (4 copies) plus the activations of one batch
    (outputs of every leaf module, kept for the backward pass, twice for their gradients), estimated
    with one forward of ``sample`` (a single image ``(C, H, W)``).
    """
    device = torch.device(device)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    activations = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: activations.append(out.numel() * out.element_size()))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(sample[None].float())
    finally:
        for hook in hooks:
            hook.remove()
    per_model = 4 * parameters + 2 * batch_size * sum(activations)
    if available is None:
        available = device_memory(device)
    return int(max(1, min(MAX_CHUNK, MEMORY_FRACTION * available // max(per_model, 1))))


def device_memory(device: torch.device) -> int:
    """Total bytes of ``device`` (CUDA: the GPU's memory; CPU: the kernel's MemTotal): hardware, not
    load, so the chunk size (and with it every model's float rounding) is the same at any load."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def train_stacked(models: Sequence[nn.Module], recipes: Sequence[TrainConfig], images: torch.Tensor,
                  labels: torch.Tensor, rows: Sequence[np.ndarray], device: torch.device | str = "cpu",
                  on_epoch: Callable[[int], None] | None = None, on_step: Callable[[], None] | None = None,
                  grouped: bool = True) -> tuple[list[dict | None], dict[int, int]]:
    """Train ``models[k]`` on ``images[rows[k]]`` with ``recipes[k]``, all in one batched step.

    Recipes may differ only in their seed (the batch order); ``images`` ``(P, C, H, W)`` and
    ``labels`` ``(P,)`` hold the population. ``on_epoch(epoch)`` is called after each epoch,
    ``on_step()`` after each batched step (e.g. to time steps). ``grouped`` False steps under vmap
    even where the grouped network would do (the benchmark compares the two).

    Returns
    -------
    states : one CPU state dict per model; None for a model whose loss became NaN or inf
    diverged : chunk position -> the epoch in which its loss became non-finite (that model stops
        training there; the others of the chunk go on, their slices never mix)
    """
    device = torch.device(device)
    shared = {**recipes[0].to_dict(), "seed": 0}
    if any({**r.to_dict(), "seed": 0} != shared for r in recipes):
        raise ValueError("a batched chunk needs one recipe (except the seed) for all its models")
    recipe, count = recipes[0], len(models)
    images, labels = images.to(device), labels.to(device)
    flat, params = _flat_parameters(models, device)
    base = models[0]
    rows_of_flat = list(flat)              # model k's parameters, views kept (a gradient goes on these)
    optimizer = _chunk_optimizer(rows_of_flat, recipe)
    generators = [torch.Generator().manual_seed(r.seed) for r in recipes]
    rows = [torch.as_tensor(np.asarray(r), dtype=torch.long) for r in rows]
    sizes = [len(r) for r in rows]
    if min(sizes) == 0:
        raise ValueError("a model's training set is empty")
    batch, smoothing = recipe.batch_size, recipe.label_smoothing

    step = (grouped and _grouped_step(base, params, images, rows, smoothing)) or _vmap_step(base, smoothing)
    precision = torch.autocast(device.type, dtype=amp_dtype(device), enabled=recipe.amp)   # bf16 (batchable)
    diverged: dict[int, int] = {}
    with deterministic_algorithms():
        for epoch in range(1, recipe.epochs + 1):
            orders = [rows[k][torch.randperm(sizes[k], generator=generators[k])] for k in range(count)]
            loss_sums = torch.zeros(count, dtype=torch.float64)
            for s in range(max(-(-n // batch) for n in sizes)):
                parts = {k: order[s * batch:(s + 1) * batch] for k, order in enumerate(orders) if k not in diverged}
                live = [k for k, part in parts.items() if len(part)]
                if not live:
                    break
                lengths = torch.tensor([len(parts[k]) for k in live])
                select = None if len(live) == count else torch.tensor(live, device=device)
                if int(lengths.min()) == int(lengths.max()):   # batches of one length: the plain mean
                    index = torch.stack([parts[k] for k in live]).to(device)
                    weights = None
                else:                                 # short last batches: padded, padding weighted 0
                    index = torch.stack([torch.cat([parts[k], parts[k][:1].expand(batch - len(parts[k]))])
                                         for k in live]).to(device)
                    weights = ((torch.arange(batch)[None, :] < lengths[:, None]) / lengths[:, None].float()).to(device)
                with precision:
                    grads, losses = step(_take(params, select), images[index], labels[index], weights)
                loss_sums[live] += losses.detach().double().cpu() * lengths.double()
                flat_grads = torch.cat([grads[name].reshape(len(live), -1) for name in params], dim=1)
                for position, k in enumerate(live):     # models sitting out keep no gradient: no update
                    rows_of_flat[k].grad = flat_grads[position]
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if on_step is not None:
                    on_step()
            for k in range(count):
                if k not in diverged and not torch.isfinite(loss_sums[k]):
                    diverged[k] = epoch
            if len(diverged) == count:
                break
            if on_epoch is not None:
                on_epoch(epoch)
    states = [None if k in diverged else {name: value[k].detach().cpu().clone() for name, value in params.items()}
              for k in range(count)]
    return states, diverged


def _flat_parameters(models: Sequence[nn.Module], device: torch.device) -> tuple[torch.Tensor, dict]:
    """The chunk's parameters as one ``(K, P)`` tensor, row k model k's parameters one after another,
    and the stacked view of each parameter into it, ``name -> (K, *shape)``."""
    named = [dict(m.named_parameters()) for m in models]
    sizes = {name: p.numel() for name, p in named[0].items()}
    flat = torch.stack([torch.cat([p.detach().reshape(-1) for p in model.values()]) for model in named]).to(device)
    offsets = np.cumsum([0, *sizes.values()])
    params = {name: flat[:, start:start + size].view(len(models), *named[0][name].shape)
              for (name, size), start in zip(sizes.items(), offsets)}
    return flat, params


def _chunk_optimizer(rows: list[torch.Tensor], recipe: TrainConfig) -> torch.optim.Adam:
    """One ``torch.optim.Adam`` over ``rows`` (row k of the flat parameters: model k's, in place), with the
    recipe's learning rate and L2 weight decay, as :func:`models.training.make_optimizer` gives each
    model alone: Adam's update is element-wise, it keeps a step count and moments per tensor and skips
    tensors without a gradient, so each row follows its own model's Adam; the fused kernel updates
    them all in one call."""
    fused = rows[0].device.type in ("cpu", "cuda")
    return torch.optim.Adam(rows, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused)


Step = Callable[[dict, torch.Tensor, torch.Tensor, "torch.Tensor | None"], tuple[dict, torch.Tensor]]


def formulation(model: nn.Module) -> str:
    """How a batched chunk of ``model``'s architecture steps, in words: on the grouped network
    (:mod:`models.grouped`; a chunk whose probe disagrees falls back to vmap) or under vmap, and why."""
    reason = groupable(model)
    return "grouped, channels-last" if reason is None else f"vmap: {reason}"


def _grouped_step(base: nn.Module, params: dict, images: torch.Tensor,
                  rows: Sequence[torch.Tensor], smoothing: float) -> Step | None:
    """The chunk's step on the grouped network (:mod:`models.grouped`), or None where the
    architecture has no grouped form or its grouped logits differ from each model's own on the
    chunk's first two rows each."""
    if groupable(base) is not None:
        return None
    network = grouped_network(base)
    probe = torch.stack([r[:2] if len(r) >= 2 else r[:1].expand(2) for r in rows]).to(images.device)
    if not grouped_matches(network, base, params, images[probe]):
        return None

    def step(stacked: dict, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None):
        leaves = {name: value.detach().requires_grad_() for name, value in stacked.items()}
        logits = grouped_logits(network, leaves, x)
        per_sample = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none",
                                     label_smoothing=smoothing).view(y.shape)
        losses = per_sample.mean(1) if weights is None else (per_sample * weights).sum(1)
        grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
        return dict(zip(leaves, grads)), losses.detach()
    return step


def _vmap_step(base: nn.Module, smoothing: float) -> Step:
    """The chunk's step as ``vmap(grad(loss))`` over the stacked parameters (any batchable model)."""
    def mean_loss(p, x, y):
        return F.cross_entropy(functional_call(base, p, (x,)), y, label_smoothing=smoothing)

    def weighted_loss(p, x, y, w):   # w: 1/length on a model's own rows, 0 on the padding
        per_sample = F.cross_entropy(functional_call(base, p, (x,)), y, reduction="none", label_smoothing=smoothing)
        return (per_sample * w).sum()

    mean_step, weighted_step = vmap(grad_and_value(mean_loss)), vmap(grad_and_value(weighted_loss))
    return lambda p, x, y, w: mean_step(p, x, y) if w is None else weighted_step(p, x, y, w)


def _take(stacked: dict, select: torch.Tensor | None) -> dict:
    return stacked if select is None else {name: value.index_select(0, select) for name, value in stacked.items()}
