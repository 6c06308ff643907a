"""Layering of imports: `sitn_tf` <- `pipelines` <- `sitn_tools`, no cycles, no privates.

The rules live in `import_rules` (read from the AST, no TensorFlow needed). The first
three tests hold the real tree to them; the rest show, on small trees written to
`tmp_path`, that each rule fires on a hand-made violation and stays quiet otherwise.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from import_rules import (
    Project,
    discover_modules,
    import_cycles,
    import_graph,
    is_test_file,
    load_project,
    module_name,
    private_name_uses,
    resolve_relative,
    strongly_connected_components,
    upward_imports,
)

ROOT = Path(__file__).resolve().parents[1]


def _report(violations: list[str]) -> str:
    return f"{len(violations)} violation(s):\n" + "\n".join(violations)


@pytest.fixture(scope="module")
def repo() -> Project:
    return load_project(ROOT)


def test_no_module_imports_a_higher_layer(repo: Project) -> None:
    violations = upward_imports(repo)
    assert violations == [], _report(violations)


def test_no_import_cycles(repo: Project) -> None:
    violations = import_cycles(repo)
    assert violations == [], _report(violations)


def test_no_module_uses_another_modules_private_names(repo: Project) -> None:
    violations = private_name_uses(repo)
    assert violations == [], _report(violations)


# Synthetic trees -----------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> source) under root, with empty package __init__s."""
    for rel in files:
        folder = root / rel
        for parent in folder.parents:
            if parent == root or parent.name == "tests":
                break
            init = parent / "__init__.py"
            init.parent.mkdir(parents=True, exist_ok=True)
            init.touch()
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    return root


BASE = {
    "sitn_tf/ops.py": "X = 1\n",
    "pipelines/x.py": "Y = 2\n",
    "sitn_tools/cli.py": "Z = 3\n",
}


def test_helpers(tmp_path: Path) -> None:
    assert module_name(tmp_path, tmp_path / "sitn_tf/models/ranker.py") == "sitn_tf.models.ranker"
    assert module_name(tmp_path, tmp_path / "pipelines/bench/__init__.py") == "pipelines.bench"
    assert resolve_relative("sitn_tf.models.ranker", False, 1, "_inputs") == (
        "sitn_tf.models._inputs"
    )
    assert resolve_relative("sitn_tf.models.ranker", False, 2, "layers") == "sitn_tf.layers"
    assert resolve_relative("sitn_tf.models", True, 1, None) == "sitn_tf.models"
    assert resolve_relative("sitn_tf.models", True, 2, "ops") == "sitn_tf.ops"
    assert is_test_file("sitn_tf/ops_test.py")
    assert is_test_file("pipelines/test_x.py")
    assert is_test_file("tests/helpers.py")
    assert not is_test_file("sitn_tf/models/_testing.py")
    assert strongly_connected_components({"a": ["b"], "b": ["a", "c"], "c": []}) == [
        ["a", "b"],
        ["c"],
    ]


def test_discovery_skips_pycache_and_a_missing_package(tmp_path: Path) -> None:
    _tree(tmp_path, {"sitn_tf/ops.py": "", "pipelines/x.py": ""})
    (tmp_path / "sitn_tf/__pycache__").mkdir()
    (tmp_path / "sitn_tf/__pycache__/ops.py").write_text("import sitn_tools\n")
    assert sorted(discover_modules(tmp_path)) == [
        "pipelines",
        "pipelines.x",
        "sitn_tf",
        "sitn_tf.ops",
    ]
    assert upward_imports(tmp_path) == []


# Rule (a) ------------------------------------------------------------------------------


def test_upward_import_at_top_level_is_reported(tmp_path: Path) -> None:
    _tree(tmp_path, {**BASE, "sitn_tf/a.py": "import os\nimport pipelines.x\n"})
    [violation] = upward_imports(tmp_path)
    assert violation.startswith("sitn_tf/a.py:2: `import pipelines.x` imports pipelines.x")
    assert "layer 0 (sitn_tf, the library) must not depend on layer 1" in violation


def test_upward_import_inside_a_function_is_reported(tmp_path: Path) -> None:
    source = """
        def run():
            from sitn_tools import cli

            return cli.Z
    """
    _tree(tmp_path, {**BASE, "pipelines/a.py": source})
    [violation] = upward_imports(tmp_path)
    assert violation.startswith("pipelines/a.py:2: `from sitn_tools import cli`")
    assert "sitn_tools.cli (deferred, inside a function)" in violation
    assert "layer 2 (sitn_tools, tooling)" in violation


def test_upward_import_under_type_checking_is_reported(tmp_path: Path) -> None:
    source = """
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from pipelines.x import Y
    """
    _tree(tmp_path, {**BASE, "sitn_tf/a.py": source})
    [violation] = upward_imports(tmp_path)
    assert violation.startswith("sitn_tf/a.py:4: `from pipelines.x import Y` imports pipelines.x")


def test_downward_imports_are_allowed(tmp_path: Path) -> None:
    files = {
        **BASE,
        "pipelines/a.py": "import sitn_tf.ops\nfrom sitn_tf import ops\nfrom . import x\n",
        "sitn_tools/b.py": (
            "from pipelines import a\nfrom sitn_tf.ops import X\nfrom .cli import Z\n"
        ),
        "sitn_tf/models/ranker.py": "from ..ops import X\nfrom .. import ops\n",
    }
    _tree(tmp_path, files)
    assert upward_imports(tmp_path) == []


def test_relative_import_resolving_upward_is_reported(tmp_path: Path) -> None:
    # `from .. import pipelines` in a top-level package's module climbs out of `sitn_tf`
    # (an ImportError when run); it still names the TFX application.
    _tree(tmp_path, {**BASE, "sitn_tf/a.py": "from .. import pipelines\n"})
    [violation] = upward_imports(tmp_path)
    assert violation.startswith("sitn_tf/a.py:1: `from .. import pipelines` imports pipelines:")


def test_import_module_with_a_literal_or_an_fstring_prefix_is_an_import(tmp_path: Path) -> None:
    source = """
        import importlib


        def load(name):
            importlib.import_module("json")
            importlib.import_module(f"numpy.{name}")
            importlib.import_module(f"sitn_tf.{name}")
            importlib.import_module(f"sitn_tools.bench.{name}")
            return importlib.import_module("pipelines.x")
    """
    _tree(tmp_path, {**BASE, "sitn_tf/a.py": source})
    violations = upward_imports(tmp_path)
    assert [v.split(": ", 1)[0] for v in violations] == ["sitn_tf/a.py:8", "sitn_tf/a.py:9"]
    assert (
        "importlib.import_module(f'sitn_tools.bench.{name}')` imports sitn_tools.bench "
        in (violations[0])
    )
    assert "`importlib.import_module('pipelines.x')` imports pipelines.x " in violations[1]


def test_test_files_beside_the_code_follow_their_layer(tmp_path: Path) -> None:
    files = {
        **BASE,
        "sitn_tf/foo_test.py": "import pipelines\n",
        "pipelines/test_y.py": "from sitn_tools.cli import Z\n",
        "sitn_tools/cli_test.py": "import pipelines.x\nimport sitn_tf.ops\n",
        "tests/test_x.py": "import sitn_tools\nfrom sitn_tools import cli\n",
    }
    _tree(tmp_path, files)
    violations = upward_imports(tmp_path)
    assert [v.split(": ", 1)[0] for v in violations] == [
        "sitn_tf/foo_test.py:1",
        "pipelines/test_y.py:1",
    ]


# Rule (b) ------------------------------------------------------------------------------


def test_two_module_cycle_at_top_level_is_reported(tmp_path: Path) -> None:
    files = {
        **BASE,
        "pipelines/a.py": "from pipelines import b\n",
        "pipelines/b.py": (
            "import os\n\ntry:\n    from pipelines.a import run\nexcept ImportError:\n"
            "    run = None\n"
        ),
    }
    _tree(tmp_path, files)
    assert import_cycles(tmp_path) == [
        "import cycle among pipelines.a, pipelines.b: "
        "pipelines/a.py:1 `from pipelines import b` (pipelines.a -> pipelines.b); "
        "pipelines/b.py:4 `from pipelines.a import run` (pipelines.b -> pipelines.a)"
    ]


def test_cycle_through_a_function_body_is_not_reported(tmp_path: Path) -> None:
    source_b = """
        def run():
            from pipelines import a

            return a
    """
    _tree(
        tmp_path,
        {**BASE, "pipelines/a.py": "from pipelines import b\n", "pipelines/b.py": source_b},
    )
    assert import_cycles(tmp_path) == []
    assert "pipelines.a" not in import_graph(tmp_path)["pipelines.b"]


def test_cycle_through_type_checking_is_not_reported(tmp_path: Path) -> None:
    source_b = (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pipelines import a\n"
    )
    _tree(
        tmp_path,
        {**BASE, "pipelines/a.py": "from pipelines import b\n", "pipelines/b.py": source_b},
    )
    assert import_cycles(tmp_path) == []


def test_three_module_cycle_and_self_import_are_each_reported_once(tmp_path: Path) -> None:
    files = {
        **BASE,
        "sitn_tf/a.py": "from sitn_tf.b import f\n",
        "sitn_tf/b.py": "import sitn_tf.c\n",
        "sitn_tf/c.py": "from . import a\n",
        "sitn_tf/d.py": "import sitn_tf.d\n",
        # Parent packages get no implicit edges: sitn_tf/__init__ importing sitn_tf.e,
        # which imports sitn_tf.ops, is no cycle.
        "sitn_tf/__init__.py": "from sitn_tf.e import E\n",
        "sitn_tf/e.py": "from sitn_tf.ops import X as E\n",
    }
    _tree(tmp_path, files)
    violations = import_cycles(tmp_path)
    assert [v.split(":", 1)[0] for v in violations] == [
        "import cycle among sitn_tf.a, sitn_tf.b, sitn_tf.c",
        "import cycle among sitn_tf.d",
    ]


def test_cycles_through_test_modules_are_not_reported(tmp_path: Path) -> None:
    files = {
        **BASE,
        "pipelines/a.py": "from pipelines import a_test\n",
        "pipelines/a_test.py": "from pipelines import a\n",
    }
    _tree(tmp_path, files)
    assert import_cycles(tmp_path) == []


# Rule (c) ------------------------------------------------------------------------------


def test_importing_a_private_name_is_reported(tmp_path: Path) -> None:
    files = {
        **BASE,
        "pipelines/a.py": "def _hidden():\n    return 1\n",
        "pipelines/b.py": "from pipelines.a import _hidden\nfrom sitn_tf import __version__\n",
    }
    _tree(tmp_path, files)
    assert private_name_uses(tmp_path) == [
        "pipelines/b.py:1: `from pipelines.a import _hidden` imports the private name _hidden "
        "of pipelines.a"
    ]


def test_private_attribute_of_an_imported_module_is_reported(tmp_path: Path) -> None:
    source = """
        import pipelines.a as alias
        import sitn_tf
        from pipelines import a


        class Runner:
            def __init__(self):
                self._x = a.public()

            def run(self, a):
                return self._x, a._replace(), sitn_tf.__version__


        def run():
            return a._hidden() + alias._hidden


        def shadowed():
            a = object()
            return a._hidden
    """
    files = {**BASE, "pipelines/a.py": "def _hidden():\n    return 1\n", "pipelines/b.py": source}
    _tree(tmp_path, files)
    assert private_name_uses(tmp_path) == [
        "pipelines/b.py:15: `a._hidden` uses the private name _hidden of pipelines.a",
        "pipelines/b.py:15: `alias._hidden` uses the private name _hidden of pipelines.a",
    ]


def test_private_module_is_private_to_its_package(tmp_path: Path) -> None:
    files = {
        **BASE,
        "sitn_tf/models/_inputs.py": "def build():\n    return 1\n",
        "sitn_tf/models/ranker.py": (
            "from sitn_tf.models import _inputs\nfrom ._inputs import build\n"
        ),
        "sitn_tf/models/sub/deep.py": "import sitn_tf.models._inputs\n",
        "pipelines/x.py": "from sitn_tf.models._inputs import build\n",
        "sitn_tools/cli.py": "import sitn_tf.models\n\nB = sitn_tf.models._inputs.build\n",
    }
    _tree(tmp_path, files)
    assert private_name_uses(tmp_path) == [
        "pipelines/x.py:1: `from sitn_tf.models._inputs import build` imports the private "
        "module sitn_tf.models._inputs from outside sitn_tf.models",
        "sitn_tools/cli.py:3: `sitn_tf.models._inputs` uses the private module "
        "sitn_tf.models._inputs from outside sitn_tf.models",
    ]


def test_test_files_may_use_private_names(tmp_path: Path) -> None:
    files = {
        **BASE,
        "pipelines/a.py": "def _hidden():\n    return 1\n",
        "pipelines/a_test.py": "from pipelines import a\nfrom pipelines.a import _hidden\n\n"
        "assert a._hidden() == _hidden()\n",
        "sitn_tf/models/_inputs.py": "",
        "pipelines/b_test.py": "from sitn_tf.models import _inputs\n",
    }
    _tree(tmp_path, files)
    assert private_name_uses(tmp_path) == []
