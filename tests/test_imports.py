"""The import rules of DESIGN.md, kept by walking every module's imports with `ast`.

symgraph <- compiler <- runtime, one way: symgraph imports neither (except the public face,
symgraph/__init__.py, re-exporting `gradients` and `Session` at its end), compiler never imports
runtime. numba stays in codegen and device modules (numba.cuda only inside functions), graphviz
only inside functions, so `import symgraph` is fast and compiles nothing.
"""

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("symgraph", "compiler", "runtime")
# The re-exports symgraph/__init__.py may make from the packages above it, and nothing else.
PUBLIC_REEXPORTS = {"compiler.autodiff": {"gradients"},
                    "runtime.session": {"Session", "InteractiveSession"}}


@dataclass
class Import:
    module: str  # absolute dotted name
    names: tuple[str, ...]  # for `from m import a, b`; empty for `import m`
    line: int
    in_function: bool
    top_level_index: int | None  # position among the module's top-level statements, if top-level


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    top_index = {id(stmt): i for i, stmt in enumerate(tree.body)}
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            index = top_index.get(id(child))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(alias.name, (), child.lineno, in_function, index))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = tuple(a.name for a in child.names)
                found.append(Import(base, names, child.lineno, in_function, index))
            visit(child, inner)

    visit(tree, False)
    return found


def _modules() -> dict[str, list[Import]]:
    return {str(p.relative_to(ROOT)): _imports(p)
            for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_walker_sees_the_imports_it_checks():
    """Guards the rules below from passing on a walker that finds nothing."""
    modules = _modules()
    assert "symgraph/graph.py" in modules and "runtime/session.py" in modules
    assert any(i.module == "compiler.pipeline" for i in modules["runtime/session.py"])
    assert any(i.module == "compiler.autodiff" and i.names == ("gradients",)
               for i in modules["symgraph/__init__.py"])
    lazy = [i for i in modules["symgraph/graph.py"] if i.in_function]
    assert any(i.module == "symgraph.ops.state" for i in lazy)


def test_symgraph_imports_neither_compiler_nor_runtime():
    bad = [f"{path}:{i.line} imports {i.module}"
           for path, imports in _modules().items() if path.startswith("symgraph/")
           and path != "symgraph/__init__.py"
           for i in imports if _top(i.module) in ("compiler", "runtime")]
    assert bad == []


def test_public_face_reexports_gradients_and_session_after_its_own_modules():
    imports = _modules()["symgraph/__init__.py"]
    upward = [i for i in imports if _top(i.module) in ("compiler", "runtime")]
    own = [i for i in imports if _top(i.module) not in ("compiler", "runtime")]
    for i in upward:
        assert set(i.names) <= PUBLIC_REEXPORTS.get(i.module, set()), \
            f"symgraph/__init__.py:{i.line} re-exports {i.names} from {i.module}"
        assert not i.in_function and i.top_level_index is not None
        later_own = [o for o in own if o.top_level_index is not None
                     and o.top_level_index > i.top_level_index]
        assert later_own == [], f"line {i.line} comes before symgraph's own imports {later_own}"
    assert {i.module for i in upward} == set(PUBLIC_REEXPORTS)


def test_compiler_never_imports_runtime():
    bad = [f"{path}:{i.line} imports {i.module}"
           for path, imports in _modules().items() if path.startswith("compiler/")
           for i in imports if _top(i.module) == "runtime"]
    assert bad == []


def _codegen_or_device(path: str) -> bool:
    """Code generators and device modules; symgraph/cuda.py is the cuda device's public face
    (sg.cuda.is_available() asks numba-cuda, inside the function)."""
    name = Path(path).name
    return name.startswith(("codegen", "device")) or path == "symgraph/cuda.py"


def test_numba_only_in_codegen_and_device_modules_and_cuda_only_inside_functions():
    bad = []
    for path, imports in _modules().items():
        for i in imports:
            numba = _top(i.module) == "numba"
            if numba and not _codegen_or_device(path):
                bad.append(f"{path}:{i.line} imports {i.module} outside codegen/device modules")
            cuda = i.module.startswith("numba.cuda") or (i.module == "numba" and "cuda" in i.names)
            if cuda and not i.in_function:
                bad.append(f"{path}:{i.line} imports numba.cuda at module level")
    assert bad == []


def test_graphviz_is_imported_only_inside_functions():
    bad = [f"{path}:{i.line}" for path, imports in _modules().items()
           for i in imports if _top(i.module) == "graphviz" and not i.in_function]
    assert bad == []


def test_import_symgraph_is_fast_and_loads_no_jit():
    """A fresh interpreter, so nothing is cached; the best of two runs evens out a cold disk."""
    code = (
        "import sys, time, json\n"
        "t = time.perf_counter()\n"
        "import symgraph\n"
        "elapsed = time.perf_counter() - t\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numba', 'llvmlite', 'graphviz'))\n"
        "print(json.dumps({'elapsed': elapsed, 'heavy': heavy, 'sg': hasattr(symgraph, 'Session')"
        "}))\n"
    )
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, check=True, timeout=60)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert all(r["sg"] for r in runs)
    assert runs[0]["heavy"] == [], f"import symgraph loaded {runs[0]['heavy']}"
    assert min(r["elapsed"] for r in runs) < 1.0, runs
