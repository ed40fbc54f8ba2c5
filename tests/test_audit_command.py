"""The audit command behaves as the ecosystem's: every way of starting it imports the user's
``--model`` module from the current folder and shows ``--help`` under its own name."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# how each command is started; "installed" runs the console script's entry point without the current
# folder on sys.path (-P), as the script pip writes into bin/ does
COMMANDS = {
    "script": ([sys.executable, str(ROOT / "experiments" / "audit.py")], "usage: python "),
    "module": ([sys.executable, "-m", "membership_audit"], "usage: python -m membership_audit"),
    "installed": ([sys.executable, "-P", "-c",
                   "import sys; sys.argv[0] = 'confidence-mia-audit'; "
                   "from membership_audit.cli import main; sys.exit(main())"], "usage: confidence-mia-audit"),
}


def _run(command: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A folder holding the user's package ``my_project`` (its factory returns no module, so the
    audit stops right after importing it)."""
    package = tmp_path / "my_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("def make_model():\n    return 'not a module'\n")
    return tmp_path


@pytest.mark.parametrize("how", sorted(COMMANDS))
def test_command_imports_the_model_from_the_current_folder(how, user_folder):
    command, _ = COMMANDS[how]
    done = _run(command, ["--model", "my_project.models:make_model", "--member_data", "m.npz",
                          "--non_member_data", "n.npz", "--results_dir", "out"], user_folder)
    assert done.returncode == 2, done.stderr
    assert "ModuleNotFoundError" not in done.stderr and "cannot import" not in done.stderr, done.stderr
    assert "the factory returned a str, not a torch.nn.Module" in done.stderr


@pytest.mark.parametrize("how", sorted(COMMANDS))
def test_command_help_shows_its_own_name(how, tmp_path):
    command, usage = COMMANDS[how]
    done = _run(command, ["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(usage) and "__main__.py" not in done.stdout


def test_installed_command_is_declared_and_named_in_the_readme():
    assert 'confidence-mia-audit = "membership_audit.cli:main"' in (ROOT / "pyproject.toml").read_text()
    audit_section = (ROOT / "README.md").read_text().split("## Audit your own model")[1].split("\n## ")[0]
    assert "confidence-mia-audit" in audit_section


def test_current_folder_goes_after_the_existing_entries(monkeypatch, tmp_path):
    from membership_audit.cli import current_folder_importable

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["/somewhere"])
    current_folder_importable()
    current_folder_importable()
    assert sys.path == ["/somewhere", str(tmp_path)]
