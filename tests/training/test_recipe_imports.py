"""Every `from f2rvlm... import name` in the recipes, benchmarks, Space and package resolves, including imports inside
functions that only a long run reaches (a stale one broke train_tiny's export after hours of training)."""

import ast
import importlib
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = sorted(os.path.relpath(os.path.join(here, name), ROOT)
                 for folder in ("recipes", "benchmarks", "space", "modeling/f2rvlm")
                 for here, _, names in os.walk(os.path.join(ROOT, folder)) for name in names if name.endswith(".py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_package_imports_resolve(script):
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("f2rvlm") and not node.level:
            module = importlib.import_module(node.module)
            for alias in node.names:
                found = hasattr(module, alias.name) or (
                    hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}") is not None)
                assert found, f"{script}:{node.lineno}: {node.module} has no {alias.name}"
