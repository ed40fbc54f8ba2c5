"""``python -m membership_audit ...``: the same command as ``experiments/audit.py`` and the installed
``confidence-mia-audit``."""
from membership_audit.cli import main

raise SystemExit(main(prog="python -m membership_audit"))
