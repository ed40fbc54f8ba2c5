"""The audit's options, declared once (the script's flags are generated from them)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from utils.options import option

SCORE_ROUTE = ("scores",)
MODEL_ROUTE = ("model", "checkpoint", "member_data", "non_member_data", "ood_data", "held_out_data",
               "population_data", "shadow_model", "shadow_checkpoint", "shadow_member_data",
               "shadow_non_member_data", "image_size", "normalize", "perturbed", "data_root", "device")
REFERENCE = ("reference_models", "train_fn", "ray_address", "reference_dir")
RUN = ("attacks", "seed", "results_dir", "name", "figures", "verbose")


@dataclass
class AuditConfig:
    """Everything that defines an audit; saved in its manifest."""

    scores: str | None = option(None, "scores route: a .npz with member_logits (or _probs), member_labels, "
                                      "non_member_*, optional shadow_*, reference_logits + reference_in, "
                                      "set_{{name}}_* (see docs/audit_your_model.md)", type=str)
    model: str | None = option(None, "model route: package.module:factory returning your torch.nn.Module", type=str)
    checkpoint: str | None = option(None, "the model's state dict (torch.save(model.state_dict(), path); read "
                                          "with weights_only=True)", type=str)
    member_data: str | None = option(None, "the model's training samples: an ImageFolder folder, a .npz "
                                           "(images, labels) or a data set name ({datasets})", type=str)
    non_member_data: str | None = option(None, "samples the model never saw, same forms", type=str)
    ood_data: tuple[str, ...] = option((), "extra non-member rows NAME=PATH, or a data set name "
                                           "(its row named as in the paper's tables, e.g. svhn -> SVHN)",
                                       nargs="+", type=str)
    held_out_data: str | None = option(None, "more in-distribution non-members for the held-out FPR table", type=str)
    population_data: str | None = option(None, "RMIA's population samples z (in-distribution, not audited)", type=str)
    shadow_model: str | None = option(None, "the shadow model's factory (default: --model)", type=str)
    shadow_checkpoint: str | None = option(None, "a shadow model's state dict, for the attacks fitted on one", type=str)
    shadow_member_data: str | None = option(None, "the shadow model's training samples", type=str)
    shadow_non_member_data: str | None = option(None, "samples the shadow model never saw", type=str)
    image_size: int = option(32, "input size the images are resized to (default {default})", minimum=1)
    normalize: tuple[str, ...] = option(("0.5", "0.5"), "MEAN STD, each a comma list per channel (default: "
                                        "{default}; e.g. 0.4914,0.4822,0.4465 0.2470,0.2435,0.2616)", nargs="+",
                                        type=str)
    perturbed: bool = option(True, "leave out the Permuted, Scaled and No Normalization rows", flag="--no_perturbed",
                             action="store_false")
    data_root: str = option("data", "folder of the data sets named by name (default data/)")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    reference_models: int = option(0, "K >= 4 reference models of --model trained with --train_fn by the reference pool "
                                      "(Ray with --ray_address) on random halves of the members and non-members (default 0 = off)", minimum=0)
    train_fn: str | None = option(None, "package.module:function with signature (model, images, labels, seed) -> "
                                        "None that trains model in place", type=str)
    ray_address: str | None = option(None, "train the reference models on this running Ray cluster (host:port)",
                                     type=str)
    reference_dir: str | None = option(None, "where reference models are kept (default: RESULTS_DIR/reference_models)",
                                       type=str)
    attacks: tuple[str, ...] = option((), "attacks to run: {attack_names} (default: all whose inputs are present)",
                                      nargs="+", type=str)
    seed: int = option(42, "fixes the attacks, perturbations and reference models (default {default})")
    results_dir: str = option("audit_results", "where CSVs, figures and report go (default {default})")
    name: str = option("audit", "file-name prefix of the results ({{name}}_attack_results.csv; default {default})")
    figures: bool = option(True, "write tables only", flag="--no_figures", action="store_false")
    verbose: bool = option(False, "also print the full attack table at the end (default: a short summary)",
                           action="store_true")

    def to_dict(self) -> dict:
        return asdict(self)
