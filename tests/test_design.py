"""The architecture, checked on the import statements: the tree is layered and imports only go
down the layers; no import cycle between modules; no minipg module imported inside a function
(the compiled kernels' loader aside); every package says what it holds and what it may import.
No exception list: a new import that breaks a rule fails here. And tests/ mirrors the tree: a
folder per package (and examples/ and benchmarks/), shared helpers in tests/helpers, none named like a module of
minipg (tests/helpers is on sys.path, where such a helper would hide or be hidden by the module)."""
import ast
import pathlib

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "minipg"
LAYERS = ("core", "envs", "algos", "lm", "exact", "run", "tools")
"""From the bottom: a module may import its own layer and those before it in this list."""
COMPILED = ("minipg._kernels", "minipg._kernels_avx2")
KERNEL_LOADER = "minipg.core.returns"       # imports the compiled kernels it chooses at run time
FACADE = ("minipg", "minipg.__main__")      # the public names and `python -m minipg`


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name):
    """[(imported minipg module, line, inside a function?)] of a module: every import statement,
    function-level ones included. `from minipg.x import y` names minipg.x.y when that is a
    module, else minipg.x."""
    tree = ast.parse(MODULES[name].read_text())
    in_function = {id(node) for function in ast.walk(tree)
                   if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(function)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import at line {node.lineno}"
            if node.module and node.module.split(".")[0] == "minipg":
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    found.append((target if target in MODULES or target in COMPILED
                                  else node.module, node.lineno, id(node) in in_function))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in in_function) for alias in node.names
                      if alias.name.split(".")[0] == "minipg"]
    return found


def layer(name):
    """The rank of a module's layer (LAYERS), -1 for the compiled kernels."""
    if name in COMPILED:
        return -1
    return LAYERS.index(name.split(".")[1])


def test_the_tree_has_the_layers_and_few_loose_modules():
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(LAYERS)
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(loose) <= 8, loose


@pytest.mark.parametrize("package", LAYERS)
def test_every_package_says_what_it_holds_and_what_it_may_import(package):
    docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert docstring and "May import" in docstring
    modules = {path.stem for path in (PACKAGE / package).glob("*.py")} - {"__init__"}
    listed = {word.strip(",.:") for word in docstring.split()}
    assert modules <= listed, f"{package}/__init__.py does not list {sorted(modules - listed)}"


@pytest.mark.parametrize("name", sorted(set(MODULES) - set(FACADE)))
def test_imports_only_go_down_the_layers(name):
    for target, line, _ in imports(name):
        assert target in MODULES or target in COMPILED, f"{name}:{line} imports {target}"
        if target in FACADE:
            raise AssertionError(f"{name}:{line} imports the facade {target}")
        assert layer(target) <= layer(name), \
            f"{name}:{line} imports {target}, a layer above it ({LAYERS[layer(target)]})"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_minipg_module_is_imported_inside_a_function(name):
    for target, line, inside in imports(name):
        if inside and not (name == KERNEL_LOADER and target in COMPILED):
            raise AssertionError(f"{name}:{line} imports {target} inside a function")


def test_the_math_layer_needs_no_gymnasium():
    for name, path in MODULES.items():
        if name.startswith("minipg.core"):
            text = path.read_text()
            assert "import gymnasium" not in text and "from gymnasium" not in text, name


def test_no_import_cycle_between_modules():
    graph = {name: {target for target, _, _ in imports(name) if target in MODULES}
             for name in MODULES}
    state = {}

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_checker_sees_what_it_checks():
    """The rules above are only as good as the parser: it finds function-level imports, the
    kernel loader's among them, and resolves `from minipg.x import module`."""
    found = imports(KERNEL_LOADER)
    assert any(target in COMPILED and inside for target, _, inside in found)
    loop = {target for target, _, _ in imports("minipg.run.loop")}
    assert {"minipg.run.rundir", "minipg.run.presets", "minipg.algos.registry"} <= loop
    assert layer("minipg.tools.cli") > layer("minipg.run.loop") > layer("minipg.core.nn")


def test_no_test_helper_is_named_like_a_module_of_minipg():
    helpers = {path.stem for path in (TESTS / "helpers").glob("*.py")}
    modules = {path.stem for path in PACKAGE.rglob("*.py")}
    modules |= {"minipg"} | {name.split(".")[-1] for name in COMPILED}
    assert helpers, "tests/helpers holds no helper"
    clash = sorted(helpers & modules)
    assert not clash, f"tests/helpers/ has modules named like modules of minipg: {clash}"


def test_every_folder_of_tests_is_named_after_a_package_of_minipg():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in TESTS.iterdir()
               if p.is_dir() and not p.name.startswith((".", "__"))}
    stray = sorted(folders - packages - {"helpers", "examples", "benchmarks"})
    assert not stray, f"folders of tests/ named after no package of minipg: {stray}"
