"""``python -m membership_audit ...``: the same command as ``experiments/audit.py``."""
from membership_audit.cli import main

raise SystemExit(main())
