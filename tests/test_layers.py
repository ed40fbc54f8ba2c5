"""The package's layout: imports point down the layers, no files import each other in a circle, and
the array API loads without torch."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top; a package may import its own layer's package and any lower layer, never a higher one.
# pipeline (the preset route) and membership_audit (the user route) are peers above the one engine.
LAYERS = (("utils",), ("attacks", "calibration"), ("reporting",), ("engine",), ("models", "datasets"),
          ("configuration",), ("pipeline", "membership_audit"))
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}
# Registries whose members register themselves by importing the registry back (not a design circle).
SELF_REGISTRATION = {"datasets", "models"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file, type-checking imports included)."""
    found = {}
    for package in LAYER_OF:
        for path in (ROOT / package).rglob("*.py"):
            targets = set()
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                targets.update(name for name in names if name.split(".")[0] in LAYER_OF)
            found[module_name(path)] = targets
    return found


def resolve(name: str, modules: set[str]) -> str | None:
    """The module a dotted import name refers to (``from a.b import c`` may name module ``a.b.c``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_points_up_a_layer():
    upward = [f"{module} -> {target}" for module, targets in imports().items() for target in targets
              if LAYER_OF[target.split(".")[0]] > LAYER_OF[module.split(".")[0]]]
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_the_routes_do_not_import_each_other():
    sideways = [f"{module} -> {target}" for module, targets in imports().items() for target in targets
                if {module.split(".")[0], target.split(".")[0]} == {"pipeline", "membership_audit"}]
    assert not sideways, "\n".join(sorted(sideways))


def test_no_files_import_each_other_in_a_circle():
    graph = imports()
    modules = set(graph)
    edges = {module: {resolved for target in targets if (resolved := resolve(target, modules)) not in (None, module)}
             for module, targets in graph.items()}
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circle = path[path.index(target):] + [target]
                if not all(m.split(".")[0] in SELF_REGISTRATION and m.split(".")[0] == circle[0].split(".")[0]
                           for m in circle):
                    circles.append(" -> ".join(circle))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("statement", [
    "from attacks.reference import lira_scores, rmia_scores",
    "from attacks import ThresholdAttack, SalemAttack, EntropyAttack, LossAttack, evaluate_attack",
    "from membership_audit import audit_scores, score_metrics",
])
def test_the_array_api_loads_without_torch(statement):
    code = f"import sys\n{statement}\nassert 'torch' not in sys.modules, 'torch was loaded'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_function_of_the_preset_route_is_annotated():
    bare = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [a.arg for a in node.args.args + node.args.kwonlyargs
                        if a.arg not in ("self", "cls") and a.annotation is None]
                if node.returns is None or args:
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {args}")
    assert not bare, "\n".join(bare)
