"""Training a chunk of same-architecture models as one batched model (``torch.func``).

The M models of a chunk are stacked (:func:`torch.func.stack_module_state`); one step runs
``vmap(grad(loss))`` over the stacked parameters, each model on its own batch of its own rows, then
an element-wise Adam (the formula of ``torch.optim.Adam``, L2 weight decay added to the gradient)
updates every slice exactly as that model's own optimiser would. So model k follows the same
trajectory as :func:`models.training.train_model` on its rows with its recipe (initialisation from
its seed, batch order from ``torch.randperm`` with its recipe's seed), up to float rounding.

Training sets of different sizes are handled exactly, with per-model loss weights: at step s
every model gets batch s of its own epoch. When all these batches are full (most steps) the loss is
the plain mean; when some are shorter (an epoch's last batch), each is padded to the full batch
size with its own first row (so a model's padded step does not depend on the other models) and the per-sample losses are weighted ``1 / length`` on the model's own rows and
0 on the padding, which is that model's mean over exactly its batch. A model whose epoch has fewer
batches than the chunk's longest sits out the remaining steps (no parameter, moment or step-count
update). So every model sees exactly the batches, and takes exactly the Adam steps, that it takes
when trained alone, and every step of the chunk is one batched call. Models with
buffers (BatchNorm) or dropout, and ``--amp`` recipes, are not batched (:func:`batchable`); the
caller trains them one per step.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from models.training import TrainConfig, deterministic_algorithms

BETAS, EPS = (0.9, 0.999), 1e-8   # torch.optim.Adam's defaults (make_optimizer uses them)
MAX_CHUNK = 64                    # models per batched step at most (beyond it steps stop getting cheaper)
CPU_STEP_FLOP_LIMIT = 5e8          # on CPU, models whose training step costs more train one per step: batching
                                  # pays for the digits CNN (~0.07 GFLOP per step) but not for salem_cnn_relu
                                  # on 32x32 (~1.6 GFLOP: 22 s one per step vs 47 s batched for K = 8, 1 epoch)
MEMORY_FRACTION = 0.25            # share of the device's total memory one chunk may plan to use


def batchable(model: nn.Module, recipe: TrainConfig) -> str | None:
    """None when ``model`` can be trained stacked; else why not (one phrase)."""
    if any(True for _ in model.buffers()):
        return "it has buffers (BatchNorm)"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        return "it has dropout"
    if recipe.amp:
        return "--amp"
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
                  on_epoch: Callable[[int], None] | None = None, on_step: Callable[[], None] | None = None
                  ) -> tuple[list[dict | None], dict[int, int]]:
    """Train ``models[k]`` on ``images[rows[k]]`` with ``recipes[k]``, all in one batched step.

    Recipes may differ only in their seed (the batch order); ``images`` ``(P, C, H, W)`` and
    ``labels`` ``(P,)`` hold the population. ``on_epoch(epoch)`` is called after each epoch,
    ``on_step()`` after each batched step (e.g. to time steps).

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
    params, _ = stack_module_state([m.to(device) for m in models])
    params = {name: value.detach().clone() for name, value in params.items()}
    base = models[0]
    moments = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in params.items()}
    steps = torch.zeros(count, dtype=torch.float64)
    generators = [torch.Generator().manual_seed(r.seed) for r in recipes]
    rows = [torch.as_tensor(np.asarray(r), dtype=torch.long) for r in rows]
    sizes = [len(r) for r in rows]
    if min(sizes) == 0:
        raise ValueError("a model's training set is empty")
    batch, smoothing = recipe.batch_size, recipe.label_smoothing

    def mean_loss(p, x, y):
        return F.cross_entropy(functional_call(base, p, (x,)), y, label_smoothing=smoothing)

    def weighted_loss(p, x, y, w):   # w: 1/length on a model's own rows, 0 on the padding
        per_sample = F.cross_entropy(functional_call(base, p, (x,)), y, reduction="none", label_smoothing=smoothing)
        return (per_sample * w).sum()

    mean_step, weighted_step = vmap(grad_and_value(mean_loss)), vmap(grad_and_value(weighted_loss))
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
                    grads, losses = mean_step(_take(params, select), images[index], labels[index])
                else:                                 # short last batches: padded, padding weighted 0
                    index = torch.stack([torch.cat([parts[k], parts[k][:1].expand(batch - len(parts[k]))])
                                         for k in live]).to(device)
                    weights = (torch.arange(batch)[None, :] < lengths[:, None]) / lengths[:, None].float()
                    grads, losses = weighted_step(_take(params, select), images[index], labels[index],
                                                  weights.to(device))
                loss_sums[live] += losses.detach().double().cpu() * lengths.double()
                steps[live] += 1
                _adam_step(params, grads, moments, steps, select, recipe)
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


def _take(stacked: dict, select: torch.Tensor | None) -> dict:
    return stacked if select is None else {name: value.index_select(0, select) for name, value in stacked.items()}


@torch.no_grad()
def _adam_step(params: dict, grads: dict, moments: dict, steps: torch.Tensor, select: torch.Tensor | None,
               recipe: TrainConfig) -> None:
    """``torch.optim.Adam``'s update of the models ``select`` (None: all) from their ``grads``."""
    beta1, beta2 = BETAS
    live = steps if select is None else steps[select.cpu()]
    step_size = (recipe.lr / (1 - beta1 ** live)).float()
    bias2_sqrt = ((1 - beta2 ** live) ** 0.5).float()
    for name, param in params.items():
        device = param.device
        exp_avg, exp_avg_sq = moments[name]
        p, m, v = (param, exp_avg, exp_avg_sq) if select is None else (
            param.index_select(0, select), exp_avg.index_select(0, select), exp_avg_sq.index_select(0, select))
        g = grads[name]
        if recipe.weight_decay:
            g = g.add(p, alpha=recipe.weight_decay)
        shape = (-1,) + (1,) * (p.dim() - 1)
        m = m.lerp(g, 1 - beta1)
        v = v.mul(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bias2_sqrt.to(device).view(shape)).add_(EPS)
        p = p - step_size.to(device).view(shape) * (m / denom)
        if select is None:
            param.copy_(p), exp_avg.copy_(m), exp_avg_sq.copy_(v)
        else:
            param.index_copy_(0, select, p), exp_avg.index_copy_(0, select, m), exp_avg_sq.index_copy_(0, select, v)
