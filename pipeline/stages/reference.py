"""Reference stage (``--reference_models K``): population -> pool (Ray) -> logits once -> LiRA / RMIA.

Population: the union of the target's and the shadow's training splits, so every reference model
trains on as many samples as the target, from the same distribution, with the same recipe; each
attack member (target and shadow) is IN for half of the K models. The other scored rows (the
target's test split: Original non-members and the held-out rest; the shadow's Original
non-members; every other non-member set, labelled with the target's predicted class where the set
has no label in the target's label space) are OUT for every reference model (the online attacks
handle such samples as documented in :mod:`attacks.reference`). RMIA's population samples z are
the rest of the shadow's test split. Every model (target, shadow, each reference model) runs once
over all these rows; the logits are cached on disk like the target's scores.
"""
from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attacks.evaluation import AttackOutputs
from attacks import ATTACKS, ReferenceAttack
from attacks.reference import ReferenceSignals
from models.checkpoints import fingerprint
from models.reference_pool import (ModelTrainer, ReferenceModelSpec, ReferencePool, balanced_membership,
                                   check_same_architecture, chunk_mode, digest_rows)
from models.training import TrainConfig
from configuration.config import ExperimentConfig
from pipeline.manifest import StageRecord, timed_into
from pipeline.stages.models import train_config
from pipeline.stages.prepared import PreparedRun
from datasets.splits.seeded import complement
from pipeline.scores import ForwardCounter, ScoreCache, Scores
from utils.locks import hold_locks
from utils.seeding import derive_seed

log = logging.getLogger(__name__)
HELD_OUT = "Held-out"            # target test rows that are not Original non-members
SHADOW_MEMBERS, SHADOW_NON_MEMBERS, POPULATION_Z = "Shadow members", "Shadow non-members", "z"


@dataclass(frozen=True)
class Population:
    """Images and labels of all rows; ``blocks`` name -> row positions; rows >= ``scored`` are z."""

    images: torch.Tensor
    labels: np.ndarray
    blocks: dict[str, np.ndarray]
    size: int                                   # population rows, first (reference models train on them)
    scored: int                                 # rows attacks score (population and the rest; z after)
    label_source: dict[str, str] = field(default_factory=dict)   # set -> "label" / "predicted"


def build_population(prepared: PreparedRun, target_scores: dict[str, Scores]) -> Population:
    """Population rows (see module docstring) then z rows, with the block of every scored set."""
    data, positions = prepared.data, prepared.positions
    parts, blocks, label_source = [], {}, {}

    def add(name: str, images: torch.Tensor, labels: Any, rows: Any = None) -> int:
        start = sum(len(p[1]) for p in parts)
        parts.append((images, np.asarray(labels, dtype=np.int64)))
        if rows is not None:
            blocks[name] = start + np.asarray(rows)
        return start

    train_t, train_s = data.splits["target_train"], data.splits["shadow_train"]
    test_t, test_s = data.splits["target_test"], data.splits["shadow_test"]
    add("Members", train_t.images, train_t.labels.numpy(), positions["target_members"])
    add(SHADOW_MEMBERS, train_s.images, train_s.labels.numpy(), positions["shadow_members"])
    size = sum(len(p[1]) for p in parts)
    start = add("Original", test_t.images, test_t.labels.numpy(), positions["target_non_members"])
    blocks[HELD_OUT] = start + complement(positions["target_non_members"], len(test_t.labels))
    shadow_original = test_s.subset(positions["shadow_non_members"])
    add(SHADOW_NON_MEMBERS, shadow_original.images, shadow_original.labels.numpy(), np.arange(len(shadow_original.labels)))
    label_source["Original"] = "label"
    for name, tensors in prepared.sets.items():
        if tensors is prepared.original:
            continue
        in_space = prepared.in_label_space[name]
        labels = tensors.labels.numpy() if in_space else target_scores[name].probs.argmax(axis=1)
        label_source[name] = "label" if in_space else "predicted"
        add(name, tensors.images, labels, np.arange(len(labels)))
    scored = sum(len(p[1]) for p in parts)
    z = test_s.subset(complement(positions["shadow_non_members"], len(test_s.labels)))
    add(POPULATION_Z, z.images, z.labels.numpy(), np.arange(len(z.labels)))
    images = torch.cat([p[0] for p in parts])
    return Population(images, np.concatenate([p[1] for p in parts]), blocks, size, scored, label_source)


def reference_specs(config: ExperimentConfig, prepared: PreparedRun, population: Population,
                    membership: np.ndarray) -> list[ReferenceModelSpec]:
    domain = prepared.data.domain
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
    """Before any work: ``--reference_models`` at most :data:`MAX_REFERENCE_MODELS` and half the
    population rows (the target's and the shadow's training splits), its checkpoints fit on the
    disk of ``--pretrained_dir``, and ``--pool_chunk_size`` is not negative; one line naming the flag."""
    import shutil

    from models import build_model
    from configuration.config import domain_for

    k = config.reference_models
    if config.pool_chunk_size < 0:
        raise ValueError(f"--pool_chunk_size must be 0 (automatic) or positive, got {config.pool_chunk_size}")
    if not k:
        return
    population = 2 * config.train_set_size
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


def load_or_train_pool(config: ExperimentConfig, prepared: PreparedRun, population: Population,
                       trainer: ModelTrainer | None = None
                       ) -> tuple[list[torch.nn.Module], np.ndarray, dict[str, Any]]:
    """The K reference models (loaded where this pool's checkpoint exists, the rest trained in batched
    chunks, through Ray where it pays), the membership matrix over population rows (K, P) and the
    pool's manifest note.

    The pool is generic over the membership matrix (any ``(K, P)`` bool matrix; models with training
    sets of different sizes are trained exactly). ``--train`` retrains and replaces every model;
    without it only missing models are trained. ``trainer``: a per-model training function
    (:data:`models.reference_pool.ModelTrainer`) instead of the package's batched recipe.
    """
    from models.batched_training import MAX_CHUNK, chunk_size
    from models.ray_pool import train_pool

    membership = balanced_membership(config.reference_models, population.size,
                                     derive_seed(config.seed, "reference", "membership"))
    specs = reference_specs(config, prepared, population, membership)
    pool = ReferencePool(config.pretrained_dir, config.model_arch, config.dataset, config.training_modifier(),
                         specs, membership)
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
        seconds = {}

        def on_done(spec: ReferenceModelSpec, result: dict[str, Any]) -> None:
            models[spec.index], _ = pool.save(spec, result["state_dict"])
            seconds[spec.index] = round(result["seconds"], 3)
            log.debug("reference model %d trained in %.1f s", spec.index, result["seconds"])

        pool_info, note = None, None
        if missing:
            device = prepared.device
            batch = config.pool_chunk_size != 1        # --pool_chunk_size 1: one model per step
            note = chunk_mode(missing[0], trainer) or (None if batch else "one model per step (--pool_chunk_size 1)")
            if note:
                log.info("reference pool: %s", note)
            batch_size = TrainConfig.from_dict(missing[0].recipe).batch_size
            max_chunk = config.pool_chunk_size or (
                chunk_size(missing[0].build(), population.images[0], batch_size, device) if batch else MAX_CHUNK)
            train_rows = [np.flatnonzero(membership[spec.index]) for spec in missing]
            pool_info = train_pool(missing, population.images[:population.size],
                                   torch.as_tensor(population.labels[:population.size]), train_rows, on_done,
                                   max_chunk=max_chunk, address=config.ray_address, device=str(device),
                                   progress=config.progress, trainer=trainer, verbose=config.verbose,
                                   batch=batch)
            pool_info["max_chunk"] = max_chunk
    pool_note = {
        "models": len(specs), "loaded": len(specs) - len(missing), "trained": len(missing),
        "train_seconds": seconds, "ray": pool_info if pool_info and pool_info["mode"] == "ray" else None,
        "training": pool_info, "note": note, "ray_address": config.ray_address or "local",
        "folder": str(pool.directory), "membership": str(pool.membership_path), "pool_id": pool.pool_id,
        "population_rows": population.size, "scored_rows": population.scored,
        "z_rows": len(population.labels) - population.scored}
    return [models[k] for k in range(len(specs))], membership, pool_note


@torch.no_grad()
def cached_logits(model: torch.nn.Module, model_fingerprint: str, images: torch.Tensor, device: torch.device,
                  cache: ScoreCache, batch_size: int = 512) -> tuple[np.ndarray, int]:
    """Logits ``(N, C)`` float32 of ``model`` on ``images``: from the cache, or one forward per sample.

    Returns the logits and the number of samples that went through the model (0 on a cache hit).
    """
    key = ScoreCache.key(model_fingerprint, {"method": "logits"}, images) if cache.enabled else None
    forwarded = []

    def compute() -> np.ndarray:
        model_on_device = model.to(device).eval()
        counter = ForwardCounter(model_on_device)
        try:
            chunks = [model_on_device(images[s:s + batch_size].to(device)).float().cpu()
                      for s in range(0, len(images), batch_size)]
        finally:
            counter.remove()
        forwarded.append(counter.samples)
        return torch.cat(chunks).numpy()

    logits, _ = cache.array("logits", key, len(images), compute, field="logits")
    return logits, sum(forwarded)


@dataclass(frozen=True)
class ReferenceOutcome:
    """Per reference attack, its outputs on "Members", every set and the held-out rows."""

    attacks: list[ReferenceAttack]
    outputs: dict[str, dict[str, AttackOutputs]]
    population: Population
    signals: dict[str, ReferenceSignals] = field(default_factory=dict)  # "target" / "shadow" -> scored rows
    record: StageRecord = field(default_factory=StageRecord)         # pool and forward-pass notes, timings


def run_reference_attacks(config: ExperimentConfig, prepared: PreparedRun, target_scores: dict[str, Scores],
                          names: list[str], cache: ScoreCache) -> ReferenceOutcome:
    """Train or load the pool, score every model once, fit each named reference attack on the shadow
    model and apply it to the target's members, sets and held-out rows."""
    population = build_population(prepared, target_scores)
    timings: dict[str, float] = {}
    with timed_into(timings, "reference_pool"):
        references, membership, pool_note = load_or_train_pool(config, prepared, population)
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
    z = population.blocks[POPULATION_Z]
    signals = {role: ReferenceSignals(logits[role], population.labels, reference_logits, reference_in,
                                      logits[role][z], population.labels[z], reference_logits[:, z])
               for role in ("target", "shadow")}
    blocks = population.blocks
    attacks, outputs = [], {}
    target_max = _max_probs(logits["target"])
    for name in names:
        attack = ATTACKS[name].build(config.attack_params, derive_seed(config.seed, "attacks"))
        scored = np.arange(population.scored)
        attack.fit(signals["shadow"].rows(scored), blocks[SHADOW_MEMBERS], blocks[SHADOW_NON_MEMBERS])
        scores, decisions = attack.score_and_predict(signals["target"].rows(scored))
        outputs[attack.name] = {
            set_name: AttackOutputs(scores[blocks[set_name]], decisions[blocks[set_name]],
                                    _target_max_probs(target_scores, set_name, target_max[blocks[set_name]]))
            for set_name in ["Members", *prepared.sets, HELD_OUT]}
        attacks.append(attack)
    return ReferenceOutcome(attacks, outputs, population, {role: sig.rows(np.arange(population.scored))
                                                           for role, sig in signals.items()},
                            StageRecord(timings=timings, notes=notes))


def _max_probs(logits: np.ndarray) -> np.ndarray:
    from attacks.reference import softmax32

    return softmax32(logits).max(axis=1)


def _target_max_probs(target_scores: dict, set_name: str, fallback: np.ndarray) -> np.ndarray:
    """MMPS of the probabilities the other attacks see (calibrated ones, if any)."""
    scores = target_scores.get(set_name)
    return scores.max_probs if scores is not None else fallback
