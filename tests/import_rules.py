"""Layering rules for the project's imports, checked on the source's AST (no imports run).

The repository has three layered top-level packages, lowest first:

  * layer 0, `sitn_tf`: the library (plain Keras models, layers, data conversion);
  * layer 1, `pipelines`: the TFX application built on the library;
  * layer 2, `sitn_tools`: tooling (benchmarks, experiments, studies, the CLI entry point).

A layer may depend on the layers below it, never on those above: the library never
depends on the TFX application, which never depends on tooling. Three rules follow,
each a function returning human-readable violation strings (empty when the tree is clean):

  * `upward_imports`: no module imports one of a higher layer (rule a);
  * `import_cycles`: no cycle among the modules imported at import time (rule b);
  * `private_name_uses`: no module reaches into another module's private names or
    into a private module outside the package that owns it (rule c).

Only the standard library is used, so these checks run without TensorFlow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The layered top-level packages, lowest layer first, with what each layer is.
LAYERS: tuple[tuple[str, str], ...] = (
    ("sitn_tf", "the library"),
    ("pipelines", "the TFX application"),
    ("sitn_tools", "tooling"),
)
_LAYER_OF: dict[str, int] = {package: index for index, (package, _) in enumerate(LAYERS)}

# Nodes that open a new scope: code in their bodies runs when called (functions, lambdas)
# or sees its own names (classes).
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass(frozen=True)
class Module:
    """One Python file of a layered package."""

    name: str  # dotted, e.g. "sitn_tf.models.ranker"; "pipelines.bench" for its __init__.py
    path: Path
    rel: str  # path relative to the repository root, with forward slashes
    layer: int
    is_package: bool  # an __init__.py
    is_test: bool


@dataclass(frozen=True)
class ImportRef:
    """One import of a project module, as written in a file.

    `target` is the dotted name imported: for `from X import n` it is `X.n` when that is
    a module (or package) of the project, else `X`. `from_module`/`name` are `X`/`n` for a
    `from` import (one ref per name). `deferred` is true inside a function or lambda body
    (runs when called, not when the module is imported); `type_checking` is true inside
    `if TYPE_CHECKING:` (never runs).
    """

    importer: str
    target: str
    line: int
    text: str
    deferred: bool = False
    type_checking: bool = False
    from_module: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Project:
    """The layered packages' modules and the project imports of each."""

    root: Path
    modules: dict[str, Module]
    imports: dict[str, list[ImportRef]]
    trees: dict[str, ast.Module]
    known: frozenset[str]  # module names plus every package prefix (namespace packages too)


def layer_of(dotted: str) -> int | None:
    """The layer of a dotted name (by its first segment), or None outside the layers."""
    return _LAYER_OF.get(dotted.split(".", 1)[0])


def is_test_file(rel: str) -> bool:
    """Whether a path (relative, forward slashes) is a test file or test support.

    `*_test.py`, `test_*.py`, `conftest.py` and anything under a `tests/` folder.
    """
    parts = rel.split("/")
    name = parts[-1]
    return (
        name.endswith("_test.py")
        or name.startswith("test_")
        or name == "conftest.py"
        or "tests" in parts[:-1]
    )


def is_private(segment: str) -> bool:
    """A leading underscore, except dunders (`__init__`, `__main__`, `__version__`)."""
    return segment.startswith("_") and not (segment.startswith("__") and segment.endswith("__"))


def module_name(root: Path, path: Path) -> str:
    """The dotted module name of a file under root.

    `sitn_tf/models/ranker.py` -> `sitn_tf.models.ranker`,
    `pipelines/bench/__init__.py` -> `pipelines.bench`.
    """
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name of `from <level dots><module> import ...` written in `importer`.

    The base is the importer's package (the module itself for an `__init__`), less one
    segment per dot after the first. A relative import reaching beyond the top-level
    package (an error when run) resolves against what is left, possibly nothing.
    """
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: max(len(package) - (level - 1), 0)]
    if module:
        base = [*base, *module.split(".")]
    return ".".join(base)


def discover_modules(root: Path) -> dict[str, Module]:
    """Every `*.py` file of the layered packages under root, by dotted name.

    A missing package simply contributes no files; `__pycache__` is skipped.
    """
    modules: dict[str, Module] = {}
    for layer, (package, _) in enumerate(LAYERS):
        folder = root / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(root).as_posix()
            name = module_name(root, path)
            modules[name] = Module(
                name=name,
                path=path,
                rel=rel,
                layer=layer,
                is_package=path.name == "__init__.py",
                is_test=is_test_file(rel),
            )
    return modules


def _known_names(modules: Iterable[str]) -> frozenset[str]:
    known: set[str] = set()
    for name in modules:
        parts = name.split(".")
        known.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return frozenset(known)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _is_import_module(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return (
            func.attr == "import_module"
            and isinstance(func.value, ast.Name)
            and func.value.id == "importlib"
        )
    return isinstance(func, ast.Name) and func.id == "import_module"


def _dynamic_target(call: ast.Call) -> str | None:
    """What `importlib.import_module(...)` imports, when its argument says so statically.

    A string literal names the module; an f-string counts as an import of the dotted
    prefix its leading literal spells (`f"pipelines.bench.{name}"` -> `pipelines.bench`).
    """
    if not call.args or not _is_import_module(call.func):
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return None if arg.value.startswith(".") else arg.value
    if isinstance(arg, ast.JoinedStr):
        prefix = ""
        for value in arg.values:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                break
            prefix += value.value
        if "." in prefix and not prefix.startswith("."):
            return prefix.rsplit(".", 1)[0]
    return None


def _collect_imports(module: Module, tree: ast.Module, known: frozenset[str]) -> list[ImportRef]:
    """Every import of a project module in one file, wherever it is written."""
    refs: list[ImportRef] = []

    def add(target: str, node: ast.AST, text: str, deferred: bool, tc: bool, **kw: str) -> None:
        if layer_of(target) is not None:
            line = getattr(node, "lineno", 0)
            refs.append(ImportRef(module.name, target, line, text, deferred, tc, **kw))

    def visit(node: ast.AST, deferred: bool, tc: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                add(alias.name, node, text, deferred, tc)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = resolve_relative(module.name, module.is_package, node.level, node.module)
            source = "." * node.level + (node.module or "")
            for alias in node.names:
                text = f"from {source} import {alias.name}"
                full = f"{base}.{alias.name}" if base else alias.name
                if alias.name != "*" and full in known:
                    add(full, node, text, deferred, tc, from_module=base, name=alias.name)
                elif base:
                    add(base, node, text, deferred, tc, from_module=base, name=alias.name)
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)) is not None:
            text = f"{ast.unparse(node.func)}({ast.unparse(node.args[0])})"
            add(target, node, text, deferred, tc)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            visit(node.test, deferred, tc)
            for child in node.body:
                visit(child, deferred, True)
            for child in node.orelse:
                visit(child, deferred, tc)
            return
        if isinstance(node, _FUNCTION_NODES):
            # Decorators, defaults and annotations run with the enclosing code; the body
            # runs when the function is called.
            for child in _outer_parts(node):
                visit(child, deferred, tc)
            for child in _inner_parts(node):
                visit(child, True, tc)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, deferred, tc)

    visit(tree, False, False)
    return refs


def load_project(root: Path) -> Project:
    """Parse the layered packages under root and collect their project imports."""
    root = Path(root)
    modules = discover_modules(root)
    known = _known_names(modules)
    trees: dict[str, ast.Module] = {}
    imports: dict[str, list[ImportRef]] = {}
    for name, module in modules.items():
        tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=module.rel)
        trees[name] = tree
        imports[name] = _collect_imports(module, tree, known)
    return Project(root=root, modules=modules, imports=imports, trees=trees, known=known)


def _project(root: Path | Project) -> Project:
    return root if isinstance(root, Project) else load_project(root)


def _unique(violations: list[str]) -> list[str]:
    """Drop repeats (one `from X import a, b` line makes a ref per name), keeping order."""
    return list(dict.fromkeys(violations))


def _describe_layer(layer: int) -> str:
    package, what = LAYERS[layer]
    return f"layer {layer} ({package}, {what})"


# Rule (a) ------------------------------------------------------------------------------


def upward_imports(root: Path | Project) -> list[str]:
    """Rule (a): imports from a lower layer of a higher one.

    A module of layer i must not import a module of layer j > i: `sitn_tf` never imports
    `pipelines` or `sitn_tools`, and `pipelines` never imports `sitn_tools`. Every import
    counts, wherever it is written: a deferred import inside a function is still a
    dependency (it only moves the failure to call time), and so is one under
    `if TYPE_CHECKING:` and an `importlib.import_module` of a literal name.

    Test files beside the code (`*_test.py`, `test_*.py`) follow the rule of the layer
    they sit in: a test under `sitn_tf/` must not import `pipelines` or `sitn_tools`, one
    under `pipelines/` must not import `sitn_tools`. The top-level `tests/` folder is not
    a layer and may import anything, so it is not scanned.
    """
    project = _project(root)
    violations: list[str] = []
    for name, module in project.modules.items():
        for ref in project.imports[name]:
            target_layer = layer_of(ref.target)
            if target_layer is None or target_layer <= module.layer:
                continue
            where = " (deferred, inside a function)" if ref.deferred else ""
            violations.append(
                f"{module.rel}:{ref.line}: `{ref.text}` imports {ref.target}{where}: "
                f"{_describe_layer(module.layer)} must not depend on "
                f"{_describe_layer(target_layer)}"
            )
    return _unique(violations)


# Rule (b) ------------------------------------------------------------------------------


def import_graph(root: Path | Project) -> dict[str, dict[str, ImportRef]]:
    """The import-time graph among non-test modules: importer -> {imported: first ref}.

    Only imports that run when the module is imported make edges: those at top level,
    in top-level `if`/`try`/`with` blocks and class bodies (and top-level
    `importlib.import_module` calls), not those inside function or method bodies (they
    run when called, after every module involved has loaded) nor under
    `if TYPE_CHECKING:` (never run). An edge goes to what the source names: the module,
    or the package's `__init__` for an import of a package; the parent packages that
    Python also initialises on the way get no implicit edges.
    """
    project = _project(root)
    graph: dict[str, dict[str, ImportRef]] = {}
    for name, module in project.modules.items():
        if module.is_test:
            continue
        edges = graph.setdefault(name, {})
        for ref in project.imports[name]:
            if ref.deferred or ref.type_checking:
                continue
            target = project.modules.get(ref.target)
            if target is None or target.is_test:
                continue
            edges.setdefault(target.name, ref)
    return graph


def strongly_connected_components(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, in sorted order."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                lowlink[node] = min(lowlink[node], lowlink[succ])
            elif succ in on_stack:
                lowlink[node] = min(lowlink[node], index[succ])
        if lowlink[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def import_cycles(root: Path | Project) -> list[str]:
    """Rule (b): cycles among non-test modules in the import-time graph (`import_graph`).

    A cycle makes the outcome depend on which module is imported first (one of them
    sees the other half-initialised) and ties the modules into one unit that cannot be
    understood, tested or moved apart. Each strongly connected component of more than
    one module, and each module importing itself, is reported once, with its modules
    and the imports that close it.
    """
    project = _project(root)
    graph = import_graph(project)
    violations: list[str] = []
    for component in strongly_connected_components(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        edges = [
            f"{project.modules[src].rel}:{ref.line} `{ref.text}` ({src} -> {dst})"
            for src in component
            for dst, ref in sorted(graph[src].items())
            if dst in members
        ]
        violations.append(f"import cycle among {', '.join(component)}: " + "; ".join(edges))
    return _unique(violations)


# Rule (c) ------------------------------------------------------------------------------


def _inside(importer: str, package: str) -> bool:
    return importer == package or importer.startswith(package + ".")


def _private_module_owner(dotted: str) -> str | None:
    """The package owning the first private segment of a dotted name (None if public)."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if is_private(part):
            return ".".join(parts[:i])
    return None


def _outer_parts(node: ast.AST) -> list[ast.AST]:
    """The parts of a scope node evaluated in the enclosing scope."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = node.args
        parts: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        if not isinstance(node, ast.Lambda):
            parts += node.decorator_list
            everything = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            everything += [a for a in (args.vararg, args.kwarg) if a is not None]
            parts += [a.annotation for a in everything if a.annotation is not None]
            if node.returns is not None:
                parts.append(node.returns)
        return parts
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    return []


def _inner_parts(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Lambda):
        return [node.body]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return list(node.body)
    return []


def _parameters(node: ast.AST) -> set[str]:
    if not isinstance(node, _FUNCTION_NODES):
        return set()
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return set(names)


def _scope_nodes(roots: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """The nodes of one scope: nested scopes are yielded but not entered."""
    stack = list(roots)[::-1]
    while stack:
        node = stack.pop()
        yield node
        children = _outer_parts(node) if isinstance(node, _SCOPE_NODES) else None
        if children is None:
            children = list(ast.iter_child_nodes(node))
        stack.extend(reversed(children))


class _PrivateUseChecker:
    """Rule (c) (ii) and the attribute form of (iii) for one module, scope by scope.

    A name counts as a module alias in a scope when an import binds it to a project
    module, in that scope or an enclosing one, and nothing else binds it in that scope
    (so a parameter or local variable of the same name shadows it).
    """

    def __init__(self, project: Project, module: Module) -> None:
        self.project = project
        self.module = module
        self.violations: list[str] = []

    def _bindings(self, node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str | None]]:
        known = self.project.known
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield alias.asname, alias.name if alias.name in known else None
                else:
                    top = alias.name.split(".", 1)[0]
                    yield top, top if top in known else None
            return
        base = node.module or ""
        if node.level:
            base = resolve_relative(
                self.module.name, self.module.is_package, node.level, node.module
            )
        for alias in node.names:
            if alias.name == "*":
                continue
            full = f"{base}.{alias.name}" if base else alias.name
            yield alias.asname or alias.name, full if full in known else None

    def check_scope(
        self, roots: Iterable[ast.AST], inherited: dict[str, str], params: set[str], is_class: bool
    ) -> None:
        nodes = list(_scope_nodes(roots))
        imported: dict[str, str | None] = {}
        other = set(params)
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for bound, target in self._bindings(node):
                    if bound in imported and imported[bound] != target:
                        target = None
                    imported[bound] = target
            elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                other.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                other.add(node.name)
            elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
                other.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                other.add(node.rest)
        visible = {k: v for k, v in inherited.items() if k not in other and k not in imported}
        visible.update({k: v for k, v in imported.items() if v is not None and k not in other})
        for node in nodes:
            if isinstance(node, ast.Attribute):
                self._check_attribute(node, visible)
        for node in nodes:
            if isinstance(node, _SCOPE_NODES):
                self.check_scope(
                    _inner_parts(node),
                    inherited if is_class else visible,
                    _parameters(node),
                    isinstance(node, ast.ClassDef),
                )

    def _resolve(self, expr: ast.expr, aliases: Mapping[str, str]) -> str | None:
        """The project module an expression such as `pkg.mod` stands for, if any."""
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self._resolve(expr.value, aliases)
            if base is not None and f"{base}.{expr.attr}" in self.project.known:
                return f"{base}.{expr.attr}"
        return None

    def _check_attribute(self, node: ast.Attribute, aliases: Mapping[str, str]) -> None:
        if not is_private(node.attr):
            return
        base = self._resolve(node.value, aliases)
        if base is None or base == self.module.name:
            return
        full = f"{base}.{node.attr}"
        where = f"{self.module.rel}:{node.lineno}: `{ast.unparse(node)}`"
        if full in self.project.known:
            owner = _private_module_owner(full)
            if owner is not None and not _inside(self.module.name, owner):
                self.violations.append(
                    f"{where} uses the private module {full} from outside {owner}"
                )
        else:
            self.violations.append(f"{where} uses the private name {node.attr} of {base}")


def private_name_uses(root: Path | Project) -> list[str]:
    """Rule (c): non-test modules reaching into other modules' privates.

    A leading underscore marks a name as internal to its module, and a module as
    internal to its package; what is internal can change without notice, so code
    elsewhere must not use it. Reported, in non-test modules (tests may use privates):

      (i) `from X import _name` where X is another project module;
      (ii) `alias._name` where `alias` is bound by an import to a project module (e.g.
           `preprocessing._config(...)` after `from pipelines import preprocessing`;
           `self._x` is not a module and is fine);
      (iii) importing a private module (a dotted name with a segment such as `_inputs`;
           `__init__`/`__main__` are not private) from outside the package that owns it:
           `sitn_tf.models._inputs` may be imported within `sitn_tf.models`, not from
           `pipelines`.

    Dunder names such as `__version__` are public.
    """
    project = _project(root)
    violations: list[str] = []
    for name, module in project.modules.items():
        if module.is_test:
            continue
        for ref in project.imports[name]:
            where = f"{module.rel}:{ref.line}: `{ref.text}`"
            if (
                ref.name is not None
                and ref.from_module is not None
                and ref.target == ref.from_module
                and is_private(ref.name)
                and ref.from_module != name
            ):
                violations.append(
                    f"{where} imports the private name {ref.name} of {ref.from_module}"
                )
            owner = _private_module_owner(ref.target)
            if owner is not None and not _inside(name, owner):
                violations.append(
                    f"{where} imports the private module {ref.target} from outside {owner}"
                )
        checker = _PrivateUseChecker(project, module)
        checker.check_scope(project.trees[name].body, {}, set(), is_class=False)
        violations.extend(checker.violations)
    return _unique(violations)
