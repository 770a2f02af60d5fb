"""The layering rules of docs/design.md, checked on the import statements: the math layer
imports no environment, config, file or algorithm code; nothing but the trainer (its registry,
and grpo_trainer, the run around GRPO's own loop) and the exact modules that verify an
algorithm's pure functions imports an algorithm module; an algorithm never imports the
trainer."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "minipg"
MATH_LAYER = ("checks", "returns", "nn", "distributions", "normalize", "policies", "optim")
COMPILED = ("_kernels", "_kernels_avx2")          # the Cython extension behind returns.py


def minipg_imports(path):
    """The minipg modules a file imports, as dotted names below minipg ("algos.ppo", "nn")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minipg"):
            base = node.module[len("minipg"):].lstrip(".")
            for alias in node.names:
                names.add(f"{base}.{alias.name}".lstrip(".") if not base or base == "algos"
                          else base)
        elif isinstance(node, ast.Import):
            names |= {a.name[len("minipg."):] for a in node.names if a.name.startswith("minipg.")}
    return names


@pytest.mark.parametrize("module", MATH_LAYER)
def test_the_math_layer_imports_only_the_math_layer(module):
    imported = {name.split(".")[0] for name in minipg_imports(PACKAGE / f"{module}.py")}
    allowed = set(MATH_LAYER) | set(COMPILED)
    if module == "policies":
        allowed.add("checkpoint")        # policy.save / load write the checkpoint file format
    assert imported <= allowed, imported - allowed
    text = (PACKAGE / f"{module}.py").read_text()
    assert "import gymnasium" not in text


def test_only_the_trainer_imports_algorithm_modules_and_algorithms_never_import_the_trainer():
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        imported = minipg_imports(path)
        algorithm_imports = {n for n in imported if n.startswith("algos.")
                             and n != "algos.common"}
        # The exact_* modules verify algorithms' pure functions (GRPO's group advantages).
        verifies = relative.parts[0] != "algos" and relative.name.startswith("exact")
        trainer = relative.name in ("trainer", "grpo_trainer")     # grpo: a loop of its own
        if relative.parts[0] != "algos" and not trainer and not verifies:
            assert not algorithm_imports, (str(relative), algorithm_imports)
        if relative.parts[0] == "algos":
            assert not {n for n in imported if n.startswith(("trainer", "cli"))}, str(relative)
