"""Audit your own model, data or scores with the package's attacks (see docs/audit_your_model.md).

    python experiments/audit.py --scores scores.npz
    python experiments/audit.py --model my_project.models:make_model --checkpoint model.pt \
        --member_data train_images/ --non_member_data test_images/ --ood_data SVHN=svhn_images/
    python experiments/audit.py --help

The same command is ``python -m membership_audit`` and, installed (``pip install .``), ``confidence-mia-audit``.
"""
import sys

import _bootstrap  # noqa: F401  (repository root on sys.path)

from membership_audit.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog=f"python {sys.argv[0]}"))   # as typed: python experiments/audit.py
