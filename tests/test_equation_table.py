"""The README's equation-to-code table is the only one, and it matches the code.

The table under "### Where each equation lives" in README.md maps the paper's
equations to code. Every backticked `sitn_tf.` dotted path of its code column
must import, one of a row's objects must name the row's equation numbers in a
docstring, Eqs. 1-9 must all be covered, and no other `*.md` file or Python
docstring may keep a second paper-to-code table.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HEADING = "### Where each equation lives"
PAPER_EQUATIONS = range(1, 10)

# Folders never searched for a second table: outputs, caches, environments.
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
    "build",
    "dist",
}
SKIPPED_PATHS = {REPO / "docs" / "results", REPO / "runs", REPO / "out", REPO / "data"}

_NUMBER = r"\d+(?:\s*[-–—]\s*\d+)?"
# "Eq. 5", "Eq. 3-4"; "Eqs. 3–4", "Eqs. 8, 9", "Eqs. 1, 3-4 and 7".
_EQUATIONS = re.compile(
    rf"\b(?:eqs\.\s*(?P<many>{_NUMBER}(?:\s*(?:,|and|&)\s*{_NUMBER})*)"
    rf"|eq\.\s*(?P<one>{_NUMBER}))",
    re.IGNORECASE,
)
_DOTTED_PATH = re.compile(r"sitn_tf(?:\.[A-Za-z_]\w*)+")
_SEPARATOR = re.compile(r"^\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?$")


def equation_numbers(text: str) -> set[int]:
    """The equation numbers `text` mentions, with ranges such as "Eqs. 3-5" expanded."""
    numbers: set[int] = set()
    for match in _EQUATIONS.finditer(text):
        for item in re.split(r"\s*(?:,|and|&)\s*", match.group("many") or match.group("one")):
            bounds = [int(n) for n in re.split(r"\s*[-–—]\s*", item)]
            if bounds[-1] < bounds[0]:
                raise ValueError(f"Backwards equation range {item!r} in {text!r}.")
            numbers.update(range(bounds[0], bounds[-1] + 1))
    return numbers


def split_row(line: str) -> list[str]:
    """Cells of a markdown table row (no pipes inside cells)."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@dataclass(frozen=True)
class Row:
    line: int
    paper: str
    code: str

    def __str__(self) -> str:
        return f"README.md:{self.line} | {self.paper} | {self.code} |"

    @property
    def paths(self) -> list[str]:
        spans = re.findall(r"`([^`]+)`", self.code)
        return [span for span in spans if _DOTTED_PATH.fullmatch(span)]


def read_equation_table() -> list[Row]:
    lines = README.read_text(encoding="utf-8").splitlines()
    if lines.count(HEADING) != 1:
        raise AssertionError(f"README.md must have exactly one heading {HEADING!r}.")
    i = lines.index(HEADING) + 1
    while i < len(lines) and not lines[i].startswith("|"):
        if lines[i].startswith("#"):
            raise AssertionError(f"No table under {HEADING!r} in README.md.")
        i += 1
    if i + 1 >= len(lines) or not _SEPARATOR.match(lines[i + 1].strip()):
        raise AssertionError(f"No markdown table under {HEADING!r} in README.md.")
    header = [cell.lower() for cell in split_row(lines[i])]
    paper = next((j for j, cell in enumerate(header) if "paper" in cell), None)
    code = next((j for j, cell in enumerate(header) if "code" in cell), None)
    if paper is None or code is None:
        raise AssertionError(f"The table's header needs 'paper' and 'code' columns: {header}.")
    rows = []
    for number in range(i + 2, len(lines)):
        if not lines[number].startswith("|"):
            break
        cells = split_row(lines[number])
        if len(cells) != len(header):
            raise AssertionError(
                f"README.md:{number + 1}: {len(cells)} cells, header has {len(header)}."
            )
        rows.append(Row(number + 1, cells[paper], cells[code]))
    return rows


ROWS = read_equation_table()


def resolve(path: str) -> tuple[object, object | None]:
    """`(object, owner)`: import the longest module prefix of `path`, getattr the rest.

    `owner` is the object the last attribute was read from (None for a module).
    """
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name or name.startswith(f"{error.name}."):
                continue  # `name` (or a package above it) is no module: try a shorter prefix.
            raise
        owner = None
        for attribute in parts[cut:]:
            owner, obj = obj, getattr(obj, attribute)
        return obj, owner
    raise ModuleNotFoundError(f"No importable prefix in {path!r}.")


def docstrings(obj: object, owner: object | None) -> list[str]:
    """The object's own docstring; for a method also its class's and its module's."""
    documented = (
        inspect.isroutine(obj)
        or inspect.isclass(obj)
        or inspect.ismodule(obj)
        or isinstance(obj, property)
    )
    texts = [obj.__doc__] if documented else []
    if inspect.isclass(owner):
        texts += [owner.__doc__, sys.modules[owner.__module__].__doc__]
    return [text for text in texts if text]


def _row_id(row: Row) -> str:
    return f"line{row.line}-" + re.sub(r"[^A-Za-z0-9.]+", "_", row.paper).strip("_")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Eq. 5: new clusters", {5}),
        ("Eqs. 3-4: InfoNCE", {3, 4}),
        ("Eqs. 3–4, CL-I2I", {3, 4}),
        ("`L_i2c` (Eqs. 5-7).", {5, 6, 7}),
        ("Eqs. 8, 9", {8, 9}),
        ("see Eqs. 1, 3–4 and 7", {1, 3, 4, 7}),
        ("Eq. 10 and Eq. 2", {2, 10}),
        ("eq. 6\n(Eq. 1)", {1, 6}),
        ("Eq. 9, `L = -(1/N) sum_i`", {9}),
        ("Eqs.\n  3-4", {3, 4}),
        ("Tables 3-4, Freq. 2, 3 items", set()),
        ("no equation here", set()),
    ],
)
def test_equation_numbers(text, expected):
    assert equation_numbers(text) == expected


def test_equation_numbers_rejects_a_backwards_range():
    with pytest.raises(ValueError, match="Backwards"):
        equation_numbers("Eqs. 4-3")


def test_the_table_has_rows():
    assert ROWS, f"The table under {HEADING!r} is empty."


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_every_code_path_resolves(row):
    assert row.paths, f"No backticked `sitn_tf.` dotted path in the code column of: {row}"
    failures = []
    for path in row.paths:
        try:
            resolve(path)
        except (ImportError, AttributeError) as error:
            failures.append(f"{path}: {type(error).__name__}: {error}")
    assert not failures, f"Unresolvable paths in {row}:\n" + "\n".join(failures)


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_a_referenced_docstring_names_the_equations(row):
    wanted = equation_numbers(row.paper)
    if not wanted:
        return  # A row without equation numbers (e.g. `sim`, the DIN baseline).
    checked = []
    for path in row.paths:
        try:
            obj, owner = resolve(path)
        except (ImportError, AttributeError) as error:
            checked.append(f"{path}: does not resolve ({error})")
            continue
        texts = docstrings(obj, owner)
        if any(wanted <= equation_numbers(text) for text in texts):
            return
        mentioned = sorted(set().union(*(equation_numbers(text) for text in texts)))
        checked.append(f"{path}: its docstrings mention Eqs. {mentioned or 'none'}")
    pytest.fail(
        f"No docstring of the objects in {row} mentions Eqs. {sorted(wanted)} "
        "(own docstring, or a method's class or module docstring):\n" + "\n".join(checked)
    )


def test_every_equation_of_the_paper_has_a_row():
    covered = set().union(*(equation_numbers(row.paper) for row in ROWS))
    missing = [n for n in PAPER_EQUATIONS if n not in covered]
    assert not missing, f"No row of the README table for Eqs. {missing}."


def _searched_files():
    stack = [REPO]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                skipped = entry.name in SKIPPED_DIRS or entry.name.endswith(".egg-info")
                if not skipped and entry not in SKIPPED_PATHS:
                    stack.append(entry)
            elif entry.suffix in (".md", ".py"):
                yield entry


def _texts(path: Path):
    """`(where, text)` pairs: the whole of a `.md` file, each docstring of a `.py` file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    name = str(path.relative_to(REPO))
    if path.suffix == ".md":
        yield name, text
        return
    try:
        tree = ast.parse(text)
    except SyntaxError:
        yield name, text  # Mid-edit or broken: search the whole file.
        return
    nodes = [tree] + [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    for node in nodes:
        docstring = ast.get_docstring(node)
        if docstring:
            where = name if node is tree else f"{name}:{node.lineno} ({node.name})"
            yield where, docstring


def _paper_code_tables(text: str) -> list[tuple[int, str]]:
    """`(line, header)` of each markdown table whose header names 'paper' and 'code'."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines[:-1]):
        header = line.strip()
        if not (header.startswith("|") and _SEPARATOR.match(lines[i + 1].strip())):
            continue
        lowered = header.lower()
        if re.search(r"\bpaper\b", lowered) and re.search(r"\bcode\b", lowered):
            found.append((i + 1, header))
    return found


def test_the_readme_table_is_the_only_paper_to_code_table():
    tables = [
        f"{where} (line {line}): {header}"
        for path in _searched_files()
        for where, text in _texts(path)
        for line, header in _paper_code_tables(text)
    ]
    assert len(tables) == 1 and tables[0].startswith("README.md "), (
        "Expected exactly one paper-to-code table, the README's "
        f"{HEADING!r}; found:\n" + "\n".join(tables)
    )
