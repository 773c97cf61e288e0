"""The type stub `curate/_native.pyi` describes the compiled module as it is."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import curate
from curate import _native

STUB = Path(curate.__file__).parent / "_native.pyi"


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def _public(names) -> set[str]:
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def test_stub_names_match_the_module():
    stub_names = set()
    for node in _stub().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stub_names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stub_names.add(node.target.id)
    stub_names.discard("ColumnTuple")  # a type alias for readers of the stub
    assert stub_names == _public(dir(_native))


def test_stub_function_signatures_match_the_module():
    functions = [n for n in _stub().body if isinstance(n, ast.FunctionDef)]
    assert functions
    for fn in functions:
        native = inspect.signature(getattr(_native, fn.name))
        stub_params = [a.arg for a in fn.args.args]
        assert stub_params == list(native.parameters), fn.name
        # Parameters with a default in the stub have one in the module, and the reverse.
        defaults = len(fn.args.defaults)
        stub_optional = set(stub_params[len(stub_params) - defaults :]) if defaults else set()
        native_optional = {n for n, p in native.parameters.items() if p.default is not inspect.Parameter.empty}
        assert stub_optional == native_optional, fn.name


def test_stub_class_members_match_the_module():
    [scan] = [n for n in _stub().body if isinstance(n, ast.ClassDef) and n.name == "Scan"]
    stub_members = {n.name for n in scan.body if isinstance(n, ast.FunctionDef)}
    assert stub_members == {n for n in dir(_native.Scan) if not n.startswith("_")} | {"__arrow_c_stream__"}
