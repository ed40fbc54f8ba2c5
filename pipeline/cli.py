"""The experiment scripts' shared flag parser: flags -> config -> pipeline -> printed table.

Scripts differ only in which preset they start from (``pipeline.config.PRESETS``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from datasets.errors import ChecksumError, DataNotFoundError, DataSizeError
from pipeline.config import PRESETS, TEMP_FITS, config_from_preset


def build_parser(dataset: str) -> argparse.ArgumentParser:
    """Flags of the paper's scripts plus the package's own; defaults from ``dataset``'s preset."""
    preset = PRESETS[dataset]
    parser = argparse.ArgumentParser(
        description=f"Membership inference attacks on a {dataset} target and shadow model: train or "
                    f"load them, score every non-member set once, fit attacks on the shadow scores, "
                    f"and write the paper's result tables.")
    add = parser.add_argument
    add("--train", action="store_true",
        help="train target and shadow and replace their checkpoints (without it, existing checkpoints "
             "are loaded and must have been trained with the same flags)")
    add("--pretrained", action="store_true", help="initialise from ImageNet weights (resnet50)")
    fixed = (" (not used by the paper's Stanford Dogs splits: 0.8 / 0.5 of all images)"
             if preset.protocol == "paper_stanford_dogs" else "")
    splits = {"package": "seeded stratified splits", "paper_cifar10": "the paper's CIFAR-10 splits",
              "paper_stanford_dogs": "the paper's Stanford Dogs splits"}[preset.protocol]
    add("--seed", type=int, default=42,
        help=f"fixes the splits ({splits}; indices written to {{stem}}splits.npz), training and "
             f"generated data (default 42)")
    add("--model_arch", default=preset.model_arch, help=f"architecture (default {preset.model_arch})")
    add("--epochs", type=int, default=preset.epochs, help=f"training epochs (default {preset.epochs})")
    add("--lr", type=float, default=None, help="Adam learning rate (default: the architecture's)")
    add("--train_set_size", type=int, default=preset.train_set_size,
        help=f"training samples per model (default {preset.train_set_size}){fixed}")
    add("--test_set_size", type=int, default=preset.test_set_size,
        help=f"test samples per model (default {preset.test_set_size}){fixed}")
    add("--batch_size", type=int, default=preset.batch_size, help=f"batch size (default {preset.batch_size})")
    add("--model_input_image_size", type=int, default=None,
        help="input image size of the model (default: the data set's)")
    add("--attack_set_size", type=int, default=preset.attack_set_size,
        help=f"members and non-members per attack set (default {preset.attack_set_size}){fixed}")
    add("--salem_k", type=int, default=3, help="top-k scores used by the Salem attack (default 3)")
    add("--label_smoothing", action="store_true", help="train with label smoothing")
    add("--label_smoothing_factor", type=float, default=preset.label_smoothing_factor,
        help=f"label smoothing factor (default {preset.label_smoothing_factor})")
    add("--weight_decay", type=float, default=0.0,
        help=f"L2 weight decay (default 0; the paper's L2 runs use {preset.weight_decay})")
    add("--llla", action="store_true", help="calibrate with a last-layer Laplace approximation")
    add("--llla_impl", choices=("paper", "laplace"), default="paper",
        help="LLLA implementation: the paper's own (BackPACK KFAC, Monte Carlo predictive; files "
             "LLLA_) or laplace-torch's (probit predictive; files LLLA_laplace_) (default paper)")
    add("--llla_prior", choices=("ood_grid", "gridsearch", "marglik"), default=None,
        help="LLLA prior search. paper: ood_grid (default; the paper's: prior variance on "
             "logspace(0, 3, 100) by the NLL on the attack non-members + 0.25 x mean -log p on as "
             "many FakeData noise images) or gridsearch (the NLL term alone). laplace: gridsearch "
             "(default; held-out NLL), marglik (marginal likelihood) or ood_grid (+ uniform noise term)")
    add("--temp_scaling", action="store_true", help="calibrate with temperature scaling")
    add("--temp_value", type=float, default=None,
        help=f"fixed temperature (the paper's run: {preset.temp_value}); omitted: fitted by NLL "
             f"(result files temp_calib_)")
    add("--temp_fit", choices=TEMP_FITS, default="paper",
        help="how a temperature without --temp_value is fitted: paper (default: LBFGS from T=1 on each "
             "model's attack non-members, as the paper) or held_out (bounded NLL search on the test rows "
             "that are not attack rows)")
    add("--amp", action="store_true",
        help="train with bf16 autocast (CUDA and CPU; scoring stays fp32); default fp32 like the paper. "
             "Recorded in the manifest and the checkpoint's JSON; loading a checkpoint needs the same choice")
    add("--attacks", nargs="+", default=None,
        help="attacks to run (threshold salem entropy shokri; also loss modified_entropy, and with "
             "--reference_models lira lira_offline rmia rmia_online, which --reference_models adds by default)")
    add("--reference_models", type=int, default=preset.reference_models,
        help=f"K reference models for LiRA and RMIA, trained through Ray on random halves of the population "
             f"(default {preset.reference_models}; 0 = off)")
    add("--ray_address", default=None,
        help="train the reference models on this running Ray cluster (host:port) instead of a local one")
    add("--sets", nargs="+", default=None,
        help=f"non-member rows to run (default: {' '.join(preset.sets)})")
    add("--data_root", default="data", help="folder holding the data sets (default data/)")
    add("--results_dir", default="experiments/results", help="where CSVs, figures and report go")
    add("--pretrained_dir", default="pretrained_models", help="checkpoint folder")
    add("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    add("--strict", action="store_true", help="fail instead of skipping non-member sets with missing data")
    add("--download", action="store_true", help="download missing data sets (needs the network)")
    add("--no_verify", action="store_true",
        help="accept data files or folders whose checksums differ from the published ones (a warning "
             "names each; the manifest lists them); default: such data is an error")
    add("--generator_pkl", default=None, help="StyleGAN2-ADA generator pickle for the Fake sets")
    add("--stylegan_repo", default=None,
        help="stylegan2-ada-pytorch checkout (dnnlib, torch_utils) needed to unpickle its generators")
    add("--allow_pickle", action="store_true",
        help="allow unpickling --generator_pkl (unpickling runs code from the file: trust it first)")
    add("--no_cache", action="store_true", help="recompute scores instead of reading the score cache")
    add("--no_figures", action="store_true", help="write tables only")
    add("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(dataset: str, args: argparse.Namespace):
    options = {}
    if args.model_input_image_size is not None:
        options["model_input_image_size"] = args.model_input_image_size
    if args.llla and args.temp_value is not None and not args.temp_scaling:
        raise ValueError("--temp_value sets a temperature-scaling run and --llla an LLLA run; "
                         "pass only one of --llla and --temp_value")
    return config_from_preset(
        dataset, model_arch=args.model_arch, epochs=args.epochs, lr=args.lr,
        train_set_size=args.train_set_size, test_set_size=args.test_set_size, batch_size=args.batch_size,
        attack_set_size=args.attack_set_size, salem_k=args.salem_k, label_smoothing=args.label_smoothing,
        label_smoothing_factor=args.label_smoothing_factor, weight_decay=args.weight_decay,
        llla=args.llla, llla_impl=args.llla_impl, llla_prior=args.llla_prior,
        temp_scaling=args.temp_scaling or args.temp_value is not None,
        temp_value=args.temp_value, temp_fit=args.temp_fit, amp=args.amp,
        verify_checksums=not args.no_verify, pretrained=args.pretrained, seed=args.seed,
        attacks=tuple(args.attacks) if args.attacks else None,
        sets=tuple(args.sets) if args.sets else None, results_dir=args.results_dir,
        pretrained_dir=args.pretrained_dir, data_root=args.data_root, device=args.device,
        train=args.train, strict=args.strict, download=args.download, generator_pkl=args.generator_pkl,
        stylegan_repo=args.stylegan_repo,
        allow_pickle=args.allow_pickle, cache_scores=not args.no_cache, figures=not args.no_figures,
        progress=not args.quiet, options=options, reference_models=args.reference_models,
        ray_address=args.ray_address)


USER_ERRORS = (ValueError, FileNotFoundError, DataNotFoundError, ChecksumError, DataSizeError)
INTERRUPTED = "interrupted; finished checkpoints kept; rerun to continue"


def main(dataset: str, argv: Sequence[str] | None = None) -> int:
    """Parse flags, run, print the attack table; user errors end in one line on stderr (exit 2),
    Ctrl-C in :data:`INTERRUPTED` (exit 130)."""
    from pipeline.console import print_run
    from pipeline.run import run_experiment

    args = build_parser(dataset).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        config = config_from_args(dataset, args)
        outputs = run_experiment(config)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    print_run(outputs)
    return 0
