"""``experiments/audit.py``: flags -> scores (from a file, or a model over data) -> audit -> files."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from attacks import attack_options
from membership_audit.config import MODEL_ROUTE, REFERENCE, RUN, SCORE_ROUTE, AuditConfig
from membership_audit.evaluate import DEFAULT_AUDIT_ATTACKS
from utils.options import add_options, check_value, field_options, parsed_values

GROUPS = (("scores route", SCORE_ROUTE), ("model route", MODEL_ROUTE),
          ("reference models for your model (LiRA, RMIA)", REFERENCE), ("run and outputs", RUN))
REPEATABLE = ("ood_data",)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The audit's flags, generated from :class:`AuditConfig` and the attacks' option declarations;
    ``prog`` is the command's name in ``--help`` and errors (default: the script's file name)."""
    from datasets.registry import dataset_names

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Audit your own model, data or scores: the package's membership inference attacks "
                    "(fitted on a shadow model, or reference models), the paper's result tables, the "
                    "held-out FPR table, per-sample scores, figures and a report.")
    declared = {o.name: o for o in field_options(AuditConfig)}
    context = {"attack_names": " ".join(DEFAULT_AUDIT_ATTACKS), "datasets": ", ".join(dataset_names())}
    for title, names in GROUPS:
        group = parser.add_argument_group(title)
        add_options(group, [declared[n] for n in names if n not in REPEATABLE], context=context)
        for name in (n for n in names if n in REPEATABLE):   # --ood_data A=x --ood_data B=y (or A=x B=y)
            group.add_argument(declared[name].cli_flag, dest=name, action="extend", nargs="+", type=str,
                               help=declared[name].help.format(default="none", **context))
    add_options(parser.add_argument_group("attack options"), attack_options(), context=context)
    return parser


def parse_config(argv: Sequence[str] | None = None, prog: str | None = None) -> tuple[AuditConfig, dict]:
    """The audit config and the attack options the flags ask for; route conflicts are one-line errors."""
    values = {k: v for k, v in parsed_values(build_parser(prog).parse_args(argv)).items() if v is not None}
    params = {o.name: values.pop(o.name) for o in attack_options() if o.name in values}
    config = AuditConfig(**values)
    for declared in field_options(AuditConfig):
        if declared.minimum is not None:
            check_value(declared, getattr(config, declared.name))
    if (config.scores is None) == (config.model is None):
        raise ValueError("give either --scores FILE.npz (scores route) or --model package.module:factory with "
                         "--member_data and --non_member_data (model route)")
    if config.scores is not None:
        used = [n for n in MODEL_ROUTE + REFERENCE if getattr(config, n) != getattr(AuditConfig, n, None)
                and n in ("checkpoint", "member_data", "non_member_data", "ood_data", "train_fn", "reference_models")]
        if used:
            raise ValueError(f"--scores reads saved scores; drop --{used[0]} (a model-route flag)")
    elif config.member_data is None or config.non_member_data is None:
        missing = "--member_data" if config.member_data is None else "--non_member_data"
        raise ValueError(f"--model needs {missing} (an ImageFolder folder, a .npz or a data set name)")
    return config, params


def run_audit(config: AuditConfig, attack_params: dict | None = None):
    """Audit what ``config`` names and write its files; returns the result and the files."""
    from membership_audit.api import audit_model, audit_scores

    attacks = config.attacks or DEFAULT_AUDIT_ATTACKS
    if config.scores is not None:
        result = audit_scores(config.scores, attacks=attacks, seed=config.seed, attack_params=attack_params)
    else:
        result = audit_model(config.model, config.member_data, config.non_member_data, attacks=attacks,
                             attack_params=attack_params, **model_options(config))
    result.config = {**config.to_dict(), "attack_params": dict(attack_params or {})}
    return result, result.write(config.results_dir, config.name, figures=config.figures)


def model_options(config: AuditConfig) -> dict:
    """The keyword arguments of :func:`membership_audit.audit_model` the flags give."""
    return dict(checkpoint=config.checkpoint, ood_data=parse_named(config.ood_data),
                held_out_data=config.held_out_data, population_data=config.population_data,
                shadow_model=config.shadow_model, shadow_checkpoint=config.shadow_checkpoint,
                shadow_member_data=config.shadow_member_data, shadow_non_member_data=config.shadow_non_member_data,
                image_size=config.image_size, normalize=parse_normalize(config.normalize),
                perturbed=config.perturbed, reference_models=config.reference_models, train_fn=config.train_fn,
                reference_dir=config.reference_dir or str(Path(config.results_dir) / "reference_models"),
                name=config.name, ray_address=config.ray_address, seed=config.seed, data_root=config.data_root,
                device=config.device)


def parse_named(items: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` pairs of ``--ood_data`` as a dict (names unique). A bare data set key of the
    registry (``svhn``, ``stl10:test``) is a row named by its declared display name (``SVHN``)."""
    from datasets.registry import dataset_names, set_declaration

    named = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep and item.partition(":")[0] in dataset_names():
            declared = set_declaration(item.partition(":")[0])
            name, sep, path = (declared.display_name if declared and declared.display_name else item), "=", item
        if not sep or not name or not path:
            raise ValueError(f"--ood_data {item!r}: expected NAME=PATH (e.g. SVHN=data/svhn_folder) or a data set "
                             f"name ({', '.join(dataset_names())})")
        if name in named:
            raise ValueError(f"--ood_data: the row name {name!r} is given twice")
        named[name] = path
    return named


def parse_normalize(values: Sequence[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``--normalize MEAN STD`` (comma lists) as two tuples of floats."""
    if len(values) != 2:
        raise ValueError(f"--normalize: expected MEAN STD (two comma lists), got {len(values)} value(s)")
    try:
        return tuple(tuple(float(v) for v in part.split(",")) for part in values)
    except ValueError:
        raise ValueError(f"--normalize {' '.join(values)}: not comma-separated numbers") from None


def current_folder_importable() -> None:
    """Put the current folder on ``sys.path`` (after the entries already there, so it shadows none
    of them), as ``python -m`` does: ``--model my_project.models:make_model`` then imports from the
    folder the command runs in, whichever way it was started (``experiments/audit.py``, the installed
    ``confidence-mia-audit``)."""
    here = os.getcwd()
    if not any(Path(entry or ".").resolve() == Path(here).resolve() for entry in sys.path):
        sys.path.append(here)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse, audit, write, print the attack table; user errors end in one line on stderr (exit 2).
    ``prog``: the command's name in ``--help`` (default: the script's file name)."""
    from configuration.errors import run_with_one_line_errors
    from engine.tables import format_console

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    current_folder_importable()

    def run():
        config, params = parse_config(argv, prog)
        return config, *run_audit(config, params)

    code, done = run_with_one_line_errors(run)
    if code:
        return code
    config, result, files = done
    if config.verbose:
        print(format_console(result.attack_table))
    print(f"== {config.name}: done ==")
    print("\n".join(result.summary()))
    for attack, reason in result.skipped_attacks.items():
        print(f"{attack}: not run, {reason}")
    for row, reason in result.notes.get("skipped_sets", {}).items():
        print(f"{row}: not run, {reason}")
    if "report" in files:
        print(f"Report: {files['report']}")
    print(f"Every file, with checksums: {files['manifest']}")
    return 0
