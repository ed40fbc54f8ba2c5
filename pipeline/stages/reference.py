"""Reference stage (``--reference_models K``): population -> pool (Ray) -> logits once -> LiRA / RMIA.

Population (the LiRA and RMIA papers' layout): every in-distribution row of the run, i.e. the
target's and the shadow's training and test splits (attack members, Original non-members, the
held-out rows, RMIA's population samples z: the rest of the shadow's test split). Each reference
model trains on as many rows as the target, drawn so that every population row is IN for the same
number of models (``K * n / P``, n the target's training size, P the population; within one when
that is not an integer, and the attacks then use the smallest count for every row). The other
non-member sets (OOD, perturbed, generated; labelled with the target's predicted class where the
set has no label in the target's label space) are in no model's training set: they are passed to
the attacks as ``outside_population`` and scored from the same number of OUT models as every row
(online attacks estimate their IN statistics, :mod:`attacks.reference`). Every model (target,
shadow, each reference model) runs once over all rows; the logits are cached like the target's
scores. Besides the target, the run scores the shadow model as a null target and each reference
model as a target (:mod:`engine.reference_checks`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from attacks.reference import ReferenceSignals
from models.checkpoints import fingerprint
from models.reference_pool import (ModelTrainer, ReferenceModelSpec, ReferencePool, check_layout,
                                   check_same_architecture, digest_rows, population_membership)
from configuration.config import ExperimentConfig
from engine.manifest import StageRecord, timed_into
from pipeline.stages.models import train_config
from pipeline.stages.data import ExperimentData
from pipeline.stages.prepared import PreparedRun
from engine.bundle import HELD_OUT, ReferenceBundle
from datasets.domain import Domain
from datasets.splits.seeded import complement
from models.inference import ScoreCache, cached_logits
from engine.scores import Scores
from utils.locks import hold_locks
from utils.seeding import derive_seed

if TYPE_CHECKING:
    from models.pool_executor import PoolTraining

log = logging.getLogger(__name__)
SHADOW_MEMBERS, SHADOW_NON_MEMBERS, POPULATION_Z = "Shadow members", "Shadow non-members", "z"


@dataclass(frozen=True)
class Population:
    """Images and labels of all rows; ``blocks`` name -> row positions. Rows ``< size`` are the
    reference population (z among them); the rest (OOD/fake sets) are outside it."""

    images: torch.Tensor
    labels: np.ndarray
    blocks: dict[str, np.ndarray]
    size: int                                   # population rows, first (reference models train on them)
    scored: int                                 # rows attacks score (all of them)
    label_source: dict[str, str] = field(default_factory=dict)   # set -> "label" / "predicted"
    train_rows: int = 0                         # rows each reference model trains on (the target's count)


def training_population(data: ExperimentData, positions: dict[str, np.ndarray]) -> Population:
    """The reference population alone (the target's and the shadow's splits, with their blocks): what
    the reference models train on, known as soon as the splits are drawn."""
    parts, blocks = [], {}

    def add(images: torch.Tensor, labels: Any, named_rows: Any) -> None:
        start = sum(len(p[1]) for p in parts)
        parts.append((images, np.asarray(labels, dtype=np.int64)))
        for name, rows in named_rows:
            blocks[name] = start + np.asarray(rows)

    train_t, train_s = data.splits["target_train"], data.splits["shadow_train"]
    test_t, test_s = data.splits["target_test"], data.splits["shadow_test"]
    add(train_t.images, train_t.labels.numpy(), [("Members", positions["target_members"])])
    add(train_s.images, train_s.labels.numpy(), [(SHADOW_MEMBERS, positions["shadow_members"])])
    original = positions["target_non_members"]
    add(test_t.images, test_t.labels.numpy(),
        [("Original", original), (HELD_OUT, complement(original, len(test_t.labels)))])
    shadow_original = positions["shadow_non_members"]
    add(test_s.images, test_s.labels.numpy(),
        [(SHADOW_NON_MEMBERS, shadow_original), (POPULATION_Z, complement(shadow_original, len(test_s.labels)))])
    size = sum(len(p[1]) for p in parts)
    return Population(torch.cat([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), blocks, size, size,
                      {"Original": "label"}, train_rows=len(train_t.labels))


def build_population(prepared: PreparedRun, target_scores: dict[str, Scores]) -> Population:
    """Population rows (see module docstring) then the rows outside it, with the block of every set."""
    base = training_population(prepared.data, prepared.positions)
    images, labels, blocks, label_source = [base.images], [base.labels], dict(base.blocks), dict(base.label_source)
    start = base.size
    for name, tensors in prepared.sets.items():
        if tensors is prepared.original:
            continue
        in_space = prepared.in_label_space[name]
        set_labels = tensors.labels.numpy() if in_space else target_scores[name].probs.argmax(axis=1)
        label_source[name] = "label" if in_space else "predicted"
        images.append(tensors.images)
        labels.append(np.asarray(set_labels, dtype=np.int64))
        blocks[name] = start + np.arange(len(set_labels))
        start += len(set_labels)
    return Population(torch.cat(images), np.concatenate(labels), blocks, base.size, start, label_source,
                      train_rows=base.train_rows)


def reference_specs(config: ExperimentConfig, domain: Domain, population: Population,
                    membership: np.ndarray) -> list[ReferenceModelSpec]:
    """One spec per row of ``membership``: the target's architecture and recipe, a seeded init."""
    population_digest = digest_rows(population.images[:population.size], population.labels[:population.size])
    specs = []
    for k in range(len(membership)):
        role = f"reference_{k}"
        specs.append(ReferenceModelSpec(
            index=k, arch=config.model_arch, num_classes=domain.num_classes, in_channels=domain.channels,
            image_size=domain.image_size, recipe=train_config(config, role).to_dict(),
            init_seed=derive_seed(config.seed, role, "init"), population_sha256=population_digest,
            members_sha256=digest_rows(np.flatnonzero(membership[k]))))
    return specs


MAX_REFERENCE_MODELS = 1024      # --reference_models at most (and at most half the population rows)


def check_reference_pool(config: ExperimentConfig) -> None:
    """Before any work: ``--reference_models`` enough for the papers' layout (:func:`check_layout`),
    at most :data:`MAX_REFERENCE_MODELS` and half the population rows (the target's and the shadow's
    training and test splits), its checkpoints fit on the disk of ``--pretrained_dir``, and
    ``--pool_chunk_size`` is not negative; one line naming the flag."""
    import shutil

    from models import build_model
    from configuration.config import domain_for

    k = config.reference_models
    if config.pool_chunk_size < 0:
        raise ValueError(f"--pool_chunk_size must be 0 (automatic) or positive, got {config.pool_chunk_size}")
    if not k:
        return
    population = 2 * (config.train_set_size + config.test_set_size)
    check_layout(k, population, config.train_set_size)
    limit = min(MAX_REFERENCE_MODELS, population // 2)
    if k > limit:
        raise ValueError(f"--reference_models {k} is more than this run can use: at most {limit} (half the "
                         f"{population} population rows, and at most {MAX_REFERENCE_MODELS}); choose e.g. 64")
    domain = domain_for(config)
    model = build_model(config.model_arch, num_classes=domain.num_classes, in_channels=domain.channels,
                        image_size=config.model_input_image_size or domain.image_size)
    checkpoint_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + 4096
    folder = Path(config.pretrained_dir).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if k * checkpoint_bytes * 1.1 > free:
        raise ValueError(f"--reference_models {k}: the pool needs about {k * checkpoint_bytes / 2**20:.0f} MiB "
                         f"but {folder} has {free / 2**20:.0f} MiB free; choose fewer models or another "
                         f"--pretrained_dir")


def pool_of(config: ExperimentConfig, domain: Domain, population: Population
            ) -> tuple[list[ReferenceModelSpec], np.ndarray, ReferencePool]:
    """The pool this run uses: specs, membership matrix (K, P) and its folder (nothing read yet)."""
    membership = population_membership(config.reference_models, population.size, population.train_rows,
                                       derive_seed(config.seed, "reference", "membership"))
    specs = reference_specs(config, domain, population, membership)
    pool = ReferencePool(config.pretrained_dir, config.model_arch, config.dataset, config.training_modifier(),
                         specs, membership)
    return specs, membership, pool


def start_pool_ahead(config: ExperimentConfig, data: ExperimentData, positions: dict[str, np.ndarray],
                     device: torch.device) -> PoolTraining | None:
    """Submit the missing reference models to the pool's worker processes as soon as the splits are
    drawn, so they train while the run builds its non-member sets; None where it does not apply.

    It is the pool's own plan and executor (:func:`models.pool_plan.plan_for`), submitted early:
    the reference stage (:func:`load_or_train_pool`) collects the same chunks it would have
    submitted itself. It applies where the plan uses local worker processes (two or more CPUs or
    GPUs, no ``--ray_address``, not ``--pool_backend here``) and models are missing.
    """
    from engine.fitting import reference_attack_names
    from models.pool_executor import PoolTraining
    from models.pool_plan import plan_for

    if not config.reference_models or not reference_attack_names(config.attacks) or config.ray_address:
        return None
    population = training_population(data, positions)
    if config.reference_models > population.size // 2:
        return None                                   # the reference stage names the problem
    specs, membership, pool = pool_of(config, data.domain, population)
    missing = [spec for spec in specs if config.train or not pool.path(spec.index).exists()]
    if not missing:
        return None
    plan = plan_for(missing, population.images[0], device.type, pool_chunk_size=config.pool_chunk_size,
                    backend=config.pool_backend, pool_workers=config.pool_workers)
    if plan.backend != "processes":
        return None
    log.info("reference pool: %d of %d models start training ahead: %s", len(missing), len(specs), plan.reason)
    training = PoolTraining(plan, population.images, torch.as_tensor(population.labels))
    training.submit(missing, [np.flatnonzero(membership[spec.index]) for spec in missing])
    return training


def load_or_train_pool(config: ExperimentConfig, prepared: PreparedRun, population: Population,
                       trainer: ModelTrainer | None = None, ahead: PoolTraining | None = None
                       ) -> tuple[list[torch.nn.Module], np.ndarray, dict[str, Any]]:
    """The K reference models (loaded where this pool's checkpoint exists, the rest trained by the
    pool's plan, :func:`models.pool_plan.plan_for`), the membership matrix over population rows
    (K, P) and the pool's manifest note (the plan included).

    The pool is generic over the membership matrix (any ``(K, P)`` bool matrix; models with training
    sets of different sizes are trained exactly). ``--train`` retrains and replaces every model;
    without it only missing models are trained. ``trainer``: a per-model training function
    (:data:`models.reference_pool.ModelTrainer`) instead of the package's batched recipe. ``ahead``:
    the pool's executor with models submitted early (:func:`start_pool_ahead`): they are collected
    here, any other missing model is submitted to it.
    """
    from models.pool_executor import PoolTraining
    from models.pool_plan import plan_for

    specs, membership, pool = pool_of(config, prepared.data.domain, population)
    # the pool's checkpoints are locked from opening its record to the last save (utils/locks.py):
    # a second run on the same pool stops at once with one line naming this run's pid
    with hold_locks([pool.directory], "loading or training the reference models",
                    fix="wait for it to finish, or pass another --pretrained_dir"):
        pool.open(replace=config.train)
        target_model = prepared.models["target"].model
        models = {}
        for spec in specs if not config.train else ():
            model = pool.load_trained(spec)
            if model is not None:
                check_same_architecture(target_model, model, f"reference model {pool.path(spec.index)}")
                models[spec.index] = model
        missing = [spec for spec in specs if spec.index not in models]
        training = ahead if trainer is None else None
        seconds, pool_info = {}, None

        def on_done(spec: ReferenceModelSpec, result: dict[str, Any]) -> None:
            if specs[spec.index] != spec or spec.index in models:
                return                                # trained ahead but loaded here: the checkpoint stays
            models[spec.index], _ = pool.save(spec, result["state_dict"])
            seconds[spec.index] = round(result["seconds"], 3)
            log.debug("reference model %d trained in %.1f s", spec.index, result["seconds"])

        if missing or training is not None:
            if training is None:
                plan = plan_for(missing, population.images[0], prepared.device.type,
                                pool_chunk_size=config.pool_chunk_size, backend=config.pool_backend,
                                pool_workers=config.pool_workers, ray_address=config.ray_address, trainer=trainer)
                training = PoolTraining(plan, population.images[:population.size],
                                        torch.as_tensor(population.labels[:population.size]), trainer,
                                        config.ray_address, config.verbose)
            log.info("reference pool: %s", training.plan.reason)
            try:
                late = [spec for spec in missing if spec not in training.specs]
                if late:
                    training.submit(late, [np.flatnonzero(membership[spec.index]) for spec in late])
                pool_info = {**training.collect(on_done, config.progress), "ahead": training is ahead}
            finally:
                training.close()
    pool_note = {
        "models": len(specs), "loaded": len(specs) - len(missing), "trained": len(missing),
        "train_seconds": seconds, "ray": pool_info if pool_info and pool_info["mode"] == "ray" else None,
        "training": pool_info, "note": pool_info["reason"] if pool_info else None,
        "ray_address": config.ray_address or "local",
        "folder": str(pool.directory), "membership": str(pool.membership_path), "pool_id": pool.pool_id,
        "population_rows": population.size, "scored_rows": population.scored,
        "z_rows": len(population.blocks[POPULATION_Z]), "train_rows_per_model": population.train_rows,
        "in_models_per_row": sorted({int(c) for c in membership.sum(axis=0)})}
    return [models[k] for k in range(len(specs))], membership, pool_note


def reference_bundle(config: ExperimentConfig, prepared: PreparedRun, target_scores: dict[str, Scores],
                     cache: ScoreCache) -> tuple[ReferenceBundle, StageRecord]:
    """Train or load the pool, run every model (target, shadow, each reference model) once over all
    rows, and hand the engine their signals: the target's and the shadow's (fit and null test) with
    the blocks of the members, every set and the held-out rows."""
    population = build_population(prepared, target_scores)
    check_layout(config.reference_models, population.size, population.train_rows)
    timings: dict[str, float] = {}
    with timed_into(timings, "reference_pool"):
        references, membership, pool_note = load_or_train_pool(config, prepared, population,
                                                                ahead=prepared.pool_ahead)
    with timed_into(timings, "reference_scores"):
        logits, forwarded = {}, {}
        for role in ("target", "shadow"):
            trained = prepared.models[role]
            logits[role], forwarded[role] = cached_logits(trained.model, trained.fingerprint, population.images,
                                                          prepared.device, cache)
        reference_logits = []
        for k, model in enumerate(references):
            values, forwarded[f"reference_{k}"] = cached_logits(model, fingerprint(model), population.images,
                                                                prepared.device, cache)
            reference_logits.append(values)
        reference_logits = np.stack(reference_logits)
    rows = len(population.labels)
    notes = {"reference_pool": pool_note, "reference_forward_samples_per_row": {
        name: count / rows for name, count in forwarded.items()}}  # 1.0 when computed, 0.0 when cached
    reference_in = np.zeros((len(references), rows), dtype=bool)
    reference_in[:, :population.size] = membership
    outside = np.arange(rows) >= population.size
    z = population.blocks[POPULATION_Z]
    signals = {role: ReferenceSignals(logits[role], population.labels, reference_logits, reference_in,
                                      logits[role][z], population.labels[z], reference_logits[:, z],
                                      population_in=reference_in[:, z], outside_population=outside)
               for role in ("target", "shadow")}
    blocks = population.blocks
    bundle = ReferenceBundle(
        target=signals["target"], blocks={name: blocks[name] for name in ["Members", *prepared.sets, HELD_OUT]},
        evaluated_rows=complement(z, population.size),           # population rows but the z
        shadow=signals["shadow"], shadow_members=blocks[SHADOW_MEMBERS], shadow_non_members=blocks[SHADOW_NON_MEMBERS])
    return bundle, StageRecord(timings=timings, notes=notes)
