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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attacks.evaluation import AttackOutputs
from attacks import ATTACKS, ReferenceAttack
from attacks.reference import ReferenceSignals
from models.checkpoints import fingerprint
from models.reference_pool import (ReferenceModelSpec, ReferencePool, balanced_membership,
                                   check_same_architecture, digest_rows)
from configuration.config import ExperimentConfig
from pipeline.manifest import StageRecord, timed_into
from pipeline.stages.models import train_config
from pipeline.stages.prepared import PreparedRun
from datasets.splits.seeded import complement
from pipeline.scores import ForwardCounter, ScoreCache, Scores
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


def load_or_train_pool(config: ExperimentConfig, prepared: PreparedRun,
                       population: Population) -> tuple[list[torch.nn.Module], np.ndarray, dict[str, Any]]:
    """The K reference models (loaded where a matching checkpoint exists, the rest trained through
    Ray), the membership matrix over population rows (K, P) and the pool's manifest note."""
    from models.ray_pool import train_pool_with_ray

    membership = balanced_membership(config.reference_models, population.size,
                                     derive_seed(config.seed, "reference", "membership"))
    pool = ReferencePool(config.pretrained_dir, config.model_arch, config.dataset, config.training_modifier())
    pool.save_membership(membership)
    specs = reference_specs(config, prepared, population, membership)
    target_model = prepared.models["target"].model
    models = {}
    for spec in specs:
        model = pool.load_trained(spec)
        if model is not None:
            check_same_architecture(target_model, model, f"reference model {pool.path(spec.index)}")
            models[spec.index] = model
    missing = [spec for spec in specs if spec.index not in models]
    seconds = {}

    def on_done(spec: ReferenceModelSpec, result: dict[str, Any]) -> None:
        models[spec.index], _ = pool.save(spec, result["state_dict"])
        seconds[spec.index] = round(result["seconds"], 3)
        log.info("reference model %d trained in %.1f s", spec.index, result["seconds"])

    ray_info = None
    if missing:
        train_rows = [np.flatnonzero(membership[spec.index]) for spec in missing]
        ray_info = train_pool_with_ray(missing, population.images[:population.size],
                                       torch.as_tensor(population.labels[:population.size]), train_rows, on_done,
                                       address=config.ray_address, use_cuda=prepared.device.type == "cuda")
    note = {
        "models": len(specs), "loaded": len(specs) - len(missing), "trained": len(missing),
        "train_seconds": seconds, "ray": ray_info, "ray_address": config.ray_address or "local",
        "membership": str(pool.membership_path), "population_rows": population.size,
        "scored_rows": population.scored, "z_rows": len(population.labels) - population.scored}
    return [models[k] for k in range(len(specs))], membership, note


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
