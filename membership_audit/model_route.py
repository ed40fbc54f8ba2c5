"""The model route: a user's model and data -> logits once per sample -> the scores route's arrays.

The model runs once over the members, the non-members, their perturbed copies (Permuted, Scaled,
No Normalization, as in the paper; images only: for other data, e.g. tabular features ``(N, d)``,
they are skipped with the reason in the notes), every OOD set, the held-out and the population rows; with
``reference_models`` and ``train_fn`` K reference models of the user's architecture are trained
by the reference pool on balanced random halves of the members and non-members and run once over
the same rows. The arrays then go through :func:`membership_audit.inputs.inputs_from_arrays`, so
this route checks and evaluates exactly what a scores file would hold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from datasets.perturbations import PERTURBATIONS
from datasets.registry import NamedSet
from membership_audit.inputs import AuditInputs, inputs_from_arrays
from membership_audit.user_data import FEATURES, IMAGES, UserData, data_kind, load_user_data, user_domain
from membership_audit.user_model import build_user_model, load_user_checkpoint
from models.checkpoints import fingerprint
from models.inference import cached_logits
from models.inference import ScoreCache
from utils.devices import resolve_device
from utils.seeding import derive_seed

PERTURBED_SETS = {"Permuted": "permuted", "Scaled": "scaled", "No Normalization": "no_normalization"}
NOUNS = {IMAGES: "images", FEATURES: "samples"}   # what the report calls the audited rows


def score_model_inputs(model: str | Callable | nn.Module, member_data: Any, non_member_data: Any, *,
                       checkpoint: str | Path | None = None, ood_data: Mapping[str, Any] | None = None,
                       shadow_model: str | Callable | nn.Module | None = None,
                       shadow_checkpoint: str | Path | None = None, shadow_member_data: Any = None,
                       shadow_non_member_data: Any = None, held_out_data: Any = None,
                       population_data: Any = None, image_size: int = 32,
                       normalize: tuple = ((0.5,), (0.5,)), perturbed: bool = True, reference_models: int = 0,
                       train_fn: str | Callable | None = None, reference_dir: str | Path = "reference_models",
                       name: str = "audit", ray_address: str | None = None, seed: int = 42,
                       data_root: str | Path = "data", device: str = "auto") -> tuple[AuditInputs, dict]:
    """The checked audit inputs of a model on data, and notes for the manifest.

    Parameters
    ----------
    model : ``"package.module:factory"``, a factory callable or an ``nn.Module``
    member_data, non_member_data : folder (ImageFolder), ``.npz``, registry name or ``(images, labels)``;
        or features of any shape the model takes (``.npz`` ``features``, a 2-D array): then every set
        must hold features of that shape and the image perturbations are skipped
    checkpoint : state dict for ``model`` (``torch.load(weights_only=True)``)
    ood_data : row name -> data (labels optional)
    shadow_* : a shadow model (default: ``model``'s factory) with its checkpoint and data, for the
        attacks fitted on a shadow model
    held_out_data : in-distribution non-members for the held-out FPR table
    population_data : RMIA's population samples z
    image_size, normalize : the model's input size and per-channel ``(mean, std)``
    reference_models, train_fn : K reference models trained with ``train_fn(model, images, labels, seed)``
    """
    target = _model(model, checkpoint, "--model", "--checkpoint")
    form, sample_shape = data_kind(member_data)
    if form == FEATURES:
        channels, probe = 1, tuple(sample_shape)
        domain = user_domain(_num_classes(target, probe, "of features", "check the arrays' shape"), 1, image_size,
                             (0.0,), (1.0,))   # features go to the model as given
    else:
        channels = _input_channels(target)
        probe = (channels, image_size, image_size)
        hint = "check --image_size (a model on other data, e.g. tabular: give its arrays as 'features' in a .npz)"
        domain = user_domain(_num_classes(target, probe, "", hint), channels, image_size, *normalize)
    num_classes = domain.num_classes
    run = resolve_device(device)
    cache = ScoreCache(None)

    def load(spec, what: str) -> UserData:
        block = load_user_data(spec, domain, what, data_root)
        if block.kind != form or (form == FEATURES and tuple(block.images.shape[1:]) != probe):
            found = f"features {tuple(block.images.shape[1:])}" if block.kind == FEATURES else "images"
            raise ValueError(f"{what} {block.source}: holds {found}, but --member_data holds "
                             f"{'features ' + str(probe) if form == FEATURES else 'images'}; give every set "
                             f"in the same form")
        return block

    data = {"member": _labelled(load(member_data, "--member_data"), "--member_data"),
            "non_member": _labelled(load(non_member_data, "--non_member_data"), "--non_member_data")}
    sets: dict[str, UserData] = {}
    skipped_sets: dict[str, str] = {}
    if perturbed and form == FEATURES:
        reason = f"an image perturbation; the data are features of shape {probe}, not images"
        skipped_sets = {row: reason for row in PERTURBED_SETS}
    elif perturbed:
        named = NamedSet("Original", TensorDataset(data["non_member"].images, data["non_member"].labels), True)
        for row, kind in PERTURBED_SETS.items():
            perturbed_set = PERTURBATIONS[kind](named, domain, derive_seed(seed, "perturb", kind))
            items = [perturbed_set.dataset[i] for i in range(len(perturbed_set.dataset))]
            sets[row] = UserData(torch.stack([x for x, _ in items]), data["non_member"].labels, row)
    for row, spec in (ood_data or {}).items():
        if row in sets or row in ("Original", "Members"):
            raise ValueError(f"--ood_data {row}=...: the row name {row!r} is taken; choose another")
        sets[row] = load(spec, f"--ood_data {row}=")
    if held_out_data is not None:
        data["held_out"] = _labelled(load(held_out_data, "--held_out_data"), "--held_out_data")

    def logits(net: nn.Module, images: torch.Tensor) -> np.ndarray:
        return cached_logits(net, fingerprint(net), images, run, cache)[0]

    arrays: dict[str, np.ndarray] = {}
    for key, block in data.items():
        arrays[f"{key}_logits"], arrays[f"{key}_labels"] = logits(target, block.images), block.labels.numpy()
    for row, block in sets.items():
        arrays[f"set_{row}_logits"] = logits(target, block.images)
        if block.has_labels:
            arrays[f"set_{row}_labels"] = block.labels.numpy()
    if shadow_member_data is not None or shadow_non_member_data is not None or shadow_checkpoint is not None:
        shadow = _model(shadow_model or (model if not isinstance(model, nn.Module) else None), shadow_checkpoint,
                        "--shadow_model", "--shadow_checkpoint")
        for key, spec in (("shadow_member", shadow_member_data), ("shadow_non_member", shadow_non_member_data)):
            if spec is None:
                raise ValueError(f"--{key}_data is missing; a shadow model needs both --shadow_member_data and "
                                 f"--shadow_non_member_data")
            block = _labelled(load(spec, f"--{key}_data"), f"--{key}_data")
            arrays[f"{key}_logits"], arrays[f"{key}_labels"] = logits(shadow, block.images), block.labels.numpy()
    population = None
    if population_data is not None:
        population = _labelled(load(population_data, "--population_data"), "--population_data")
        arrays["population_logits"], arrays["population_labels"] = logits(target, population.images), population.labels.numpy()
    notes = {"domain": {"channels": channels, "image_size": image_size, "mean": domain.mean, "std": domain.std,
                        "classes": num_classes},
             "data_kind": form, "noun": NOUNS[form],
             "sources": {key: block.source for key, block in {**data, **sets}.items()}}
    if form == FEATURES:
        notes["domain"] = {"features": list(probe), "classes": num_classes}
    if skipped_sets:
        notes["skipped_sets"] = skipped_sets
    if reference_models:
        notes["reference_pool"] = _reference_arrays(arrays, model, train_fn, reference_models, data, sets,
                                                    population, Path(reference_dir), name, ray_address, seed, logits)
    return inputs_from_arrays(arrays, source="--model"), notes


def _reference_arrays(arrays, model, train_fn, count, data, sets, population, reference_dir, name,
                      ray_address, seed, logits) -> dict:
    """Train (or load) the user's reference pool and add its logits to ``arrays``."""
    from membership_audit.train_fn import train_user_pool, user_reference_specs
    from models.reference_pool import population_membership

    if train_fn is None:
        raise ValueError("--reference_models needs --train_fn package.module:function to train them")
    if isinstance(model, nn.Module):
        raise ValueError("--reference_models: give the model as a factory (package.module:factory or a callable), "
                         "not a built module, so reference models can be built fresh")
    if count < 4:
        raise ValueError(f"--reference_models {count}: need at least 4 (LiRA's threshold is fitted on one of them)")
    images = torch.cat([data["member"].images, data["non_member"].images])
    labels = torch.cat([data["member"].labels, data["non_member"].labels])
    # the papers' layout, as in a preset run: each model trains on as many rows as the target (its members)
    membership = population_membership(count, len(labels), len(data["member"].labels),
                                       derive_seed(seed, "reference", "membership"))
    specs = user_reference_specs(count, model if isinstance(model, str) else f"{model.__module__}:{model.__qualname__}",
                                 train_fn if isinstance(train_fn, str) else f"{train_fn.__module__}:{train_fn.__qualname__}",
                                 seed, images, labels, membership)
    references, note = train_user_pool(specs, images, labels, membership, reference_dir, name, train_fn, ray_address)
    arrays["reference_logits"] = np.stack([logits(m, images) for m in references])
    arrays["reference_in"] = membership
    for row, block in sets.items():
        arrays[f"set_{row}_reference_logits"] = np.stack([logits(m, block.images) for m in references])
    if "held_out" in data:
        arrays["held_out_reference_logits"] = np.stack([logits(m, data["held_out"].images) for m in references])
    if population is not None:
        arrays["population_reference_logits"] = np.stack([logits(m, population.images) for m in references])
    return note


def _model(model, checkpoint, flag: str, checkpoint_flag: str) -> nn.Module:
    if model is None:
        raise ValueError(f"{flag}: needed (package.module:factory) when the target is given as a module")
    net = model if isinstance(model, nn.Module) else build_user_model(model, flag)
    if checkpoint is not None:
        load_user_checkpoint(net, checkpoint, checkpoint_flag)
    return net.eval()


def _labelled(block: UserData, flag: str) -> UserData:
    if not block.has_labels:
        raise ValueError(f"{flag} {block.source}: needs labels (ImageFolder class folders, or 'labels' in the .npz)")
    return block


def _input_channels(model: nn.Module) -> int:
    """Input channels of the model's first convolution (3 when it has none)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


@torch.no_grad()
def _num_classes(model: nn.Module, sample_shape: tuple[int, ...], what: str, hint: str) -> int:
    """The model's number of classes, from its output on a zero batch of two samples of ``sample_shape``."""
    shape = (2, *sample_shape)
    try:
        out = model.eval()(torch.zeros(shape))
    except Exception as error:
        raise ValueError(f"--model: a batch {what + ' ' if what else ''}of shape {shape} fails in the model "
                         f"({type(error).__name__}: {error}); {hint}") from None
    if out.ndim != 2:
        raise ValueError(f"--model: the model returns shape {tuple(out.shape)}, expected (batch, classes) logits")
    return int(out.shape[1])
