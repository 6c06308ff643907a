"""Input discovery (driver side) and line parsers (worker side).

Every input line becomes either a record or a `Reject` carrying a reason from
`REJECT_REASONS`. Parsers never guess: an ASIN stays the exact string in the
file (leading zeros included), a timestamp must be an integer number of
seconds (or a position) in `[MIN_TIMESTAMP, MAX_TIMESTAMP]` = `[0, 2**63 - 1]`,
the range of the int64 `event_timestamp` feature, a rating a finite number.

Record layouts (plain tuples: they cross Beam shuffles, where tuples of
primitives encode fastest):
  * interaction: `(user_id, domain, item_id, timestamp, rating_or_None)`
  * item metadata: `((domain, item_id), ItemMeta)` (`item_meta.ItemMeta`, a
    NamedTuple of strings and a tuple of tags)
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import functools
import gzip
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from sitn_tf.data.config import DataError
from sitn_tf.data.item_meta import ItemMeta, split_tags

KIND_INTERACTIONS = "interactions"
KIND_ITEMS = "items"
KIND_AMAZON_REVIEWS = "amazon_reviews"
KIND_AMAZON_META = "amazon_meta"
# Inputs whose lines are interactions vs item metadata; the reject threshold
# applies to each group separately so that a broken metadata file cannot hide
# behind a large, clean review file.
INTERACTION_KINDS = (KIND_INTERACTIONS, KIND_AMAZON_REVIEWS)
METADATA_KINDS = (KIND_ITEMS, KIND_AMAZON_META)

REJECT_REASONS = (
    "bad_encoding",
    "bad_json",
    "not_an_object",
    "missing_field",
    "bad_timestamp",
    "bad_rating",
    "wrong_column_count",
)

INTERACTION_COLUMNS = ("user_id", "item_id", "domain", "timestamp")
OPTIONAL_INTERACTION_COLUMNS = ("rating",)
ITEM_COLUMNS = ("item_id", "domain")
# `category` becomes the item's category (candidate and histories); `brand`,
# `price_bucket` and `tags` (`|`-separated) become the candidate's
# `item_brand`, `item_price_bucket` and `item_tags`; `title` is accepted and
# not used. A missing column means "" (no tags) for every item.
OPTIONAL_ITEM_COLUMNS = ("category", "brand", "title", "price_bucket", "tags")

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_REJECT_TEXT = 500


class Reject(Exception):
    """A line that cannot be used; `reason` is one of `REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One matched input file and how to parse it.

    Attributes:
      path: The file (any Beam filesystem: local, gs://, s3://, ...).
      kind: One of the `KIND_*` constants.
      gzip: Whether the content is gzip-compressed (sniffed, not guessed from
        the extension).
      domain: For Amazon files, the domain every line belongs to.
      delimiter: For delimited files, the column separator.
      columns: For delimited files, the header's column names in order.
    """

    path: str
    kind: str
    gzip: bool
    domain: str | None = None
    delimiter: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def has_header(self) -> bool:
        return self.kind in (KIND_INTERACTIONS, KIND_ITEMS)


# --------------------------------------------------------------------------
# Driver side: matching files and reading headers.


def match_files(pattern: str, what: str) -> list[tuple[str, int]]:
    """Expands a path or glob to `(path, size)` pairs, failing on none/empty."""
    try:
        results = FileSystems.match([pattern])[0].metadata_list
    except Exception as err:  # Beam raises BeamIOError with nested details.
        raise DataError(f"{what}: no file matches {pattern!r} ({err})") from None
    files = sorted((m.path, m.size_in_bytes) for m in results)
    if not files:
        raise DataError(f"{what}: no file matches {pattern!r}")
    for path, size in files:
        if size == 0:
            raise DataError(f"{what}: {path} is empty")
    return files


def _is_gzip(path: str) -> bool:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        return raw.read(2) == _GZIP_MAGIC


def _open_text(path: str, compressed: bool) -> io.BufferedIOBase:
    # Compression is sniffed from content, so Beam must not guess from the name.
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if compressed:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def _first_line(path: str, compressed: bool) -> str:
    with _open_text(path, compressed) as handle:
        try:
            line = handle.readline()
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: cannot read ({err})") from None
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text.strip():
        raise DataError(f"{path} line 1: expected a header, got an empty line")
    return text


def _split_header(text: str, delimiter: str) -> tuple[str, ...]:
    if delimiter == "\t":
        cells = text.split("\t")
    else:
        cells = next(csv.reader([text], delimiter=delimiter))
    return tuple(cell.strip().lower() for cell in cells)


def _guess_delimiter(path: str, header: str, delimiter: str | None) -> str:
    if delimiter:
        return delimiter
    name = re.sub(r"\.gz$", "", path.lower())
    if name.endswith(".tsv") or name.endswith(".tab"):
        return "\t"
    if name.endswith(".csv"):
        return ","
    # Unknown extension: the header decides.
    return "\t" if "\t" in header else ","


def describe_delimited(
    pattern: str,
    kind: str,
    delimiter: str | None = None,
) -> list[InputFile]:
    """Matches a TSV/CSV input and validates each file's header."""
    if kind == KIND_INTERACTIONS:
        required, optional, what = (
            INTERACTION_COLUMNS,
            OPTIONAL_INTERACTION_COLUMNS,
            "interactions",
        )
    else:
        required, optional, what = ITEM_COLUMNS, OPTIONAL_ITEM_COLUMNS, "items"
    inputs = []
    for path, _ in match_files(pattern, what):
        compressed = _is_gzip(path)
        header = _first_line(path, compressed)
        sep = _guess_delimiter(path, header, delimiter)
        columns = _split_header(header, sep)
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(
                f"{path} line 1: the header must name the columns "
                f"{', '.join(required)} (optional: {', '.join(optional)}); "
                f"missing {', '.join(missing)}; got {list(columns)}"
            )
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise DataError(f"{path} line 1: duplicate columns {dupes}")
        inputs.append(
            InputFile(
                path=path,
                kind=kind,
                gzip=compressed,
                delimiter=sep,
                columns=columns,
            )
        )
    return inputs


def describe_amazon(pattern: str, kind: str, domain: str) -> list[InputFile]:
    """Matches Amazon review or metadata JSON(-lines) files of one domain."""
    what = f"{'reviews' if kind == KIND_AMAZON_REVIEWS else 'metadata'} of {domain}"
    return [
        InputFile(path=path, kind=kind, gzip=_is_gzip(path), domain=domain)
        for path, _ in match_files(pattern, what)
    ]


# --------------------------------------------------------------------------
# Worker side: reading numbered lines.


def read_numbered_lines(input_file: InputFile) -> Iterator[tuple[int, bytes]]:
    """Yields `(line_number, raw_line)` (1-based), skipping a header line.

    A file is read sequentially by one worker: line numbers need the count
    from the start, and gzip cannot be split anyway. Inputs made of many
    files are read in parallel.
    """
    with _open_text(input_file.path, input_file.gzip) as handle:
        reader = io.BufferedReader(handle, buffer_size=1 << 20)
        for number, line in enumerate(reader, start=1):
            if number == 1 and input_file.has_header:
                continue
            yield number, line


def decode_line(raw: bytes) -> str:
    try:
        # A byte-order mark may open a JSON-lines file (or the first line).
        return raw.decode("utf-8").rstrip("\r\n").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise Reject("bad_encoding") from None


def reject_text(raw: bytes) -> str:
    return raw[:_MAX_REJECT_TEXT].decode("utf-8", errors="replace").rstrip("\r\n")


# The valid range of a timestamp: it is written as int64 (`event_timestamp`),
# and clicks before 1970 (or before position 0) are input errors, not data.
MIN_TIMESTAMP = 0
MAX_TIMESTAMP = 2**63 - 1


def _timestamp(value: Any) -> int:
    """An int timestamp in `[MIN_TIMESTAMP, MAX_TIMESTAMP]`, or a `bad_timestamp` reject."""
    number = _integral(value)
    if not MIN_TIMESTAMP <= number <= MAX_TIMESTAMP:
        raise Reject("bad_timestamp", f"{value!r} outside [{MIN_TIMESTAMP}, {MAX_TIMESTAMP}]")
    return number


def _integral(value: Any) -> int:
    if isinstance(value, bool):
        raise Reject("bad_timestamp", repr(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise Reject("bad_timestamp", repr(value))
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise Reject("bad_timestamp", repr(value)) from None
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise Reject("bad_timestamp", repr(value))


def _rating(value: Any) -> float:
    if isinstance(value, bool):
        raise Reject("bad_rating", repr(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Reject("bad_rating", repr(value)) from None
    if not math.isfinite(number):
        raise Reject("bad_rating", repr(value))
    return number


def _required_str(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Reject("missing_field", key)
    return value.strip()


# --------------------------------------------------------------------------
# Delimited (TSV/CSV) interactions and items.


def _cells(text: str, input_file: InputFile) -> list[str]:
    if input_file.delimiter == "\t":
        cells = text.split("\t")
    else:
        cells = next(csv.reader([text], delimiter=input_file.delimiter))
    if len(cells) != len(input_file.columns):
        raise Reject(
            "wrong_column_count",
            f"expected {len(input_file.columns)} columns, got {len(cells)}",
        )
    return [cell.strip() for cell in cells]


def parse_interaction_row(
    text: str, input_file: InputFile
) -> tuple[str, str, str, int, float | None]:
    row = dict(zip(input_file.columns, _cells(text, input_file), strict=True))
    for key in INTERACTION_COLUMNS:
        if not row[key]:
            raise Reject("missing_field", key)
    rating = None
    if "rating" in row:
        if not row["rating"]:
            raise Reject("missing_field", "rating")
        rating = _rating(row["rating"])
    return (
        row["user_id"],
        row["domain"],
        row["item_id"],
        _timestamp(row["timestamp"]),
        rating,
    )


def parse_item_row(text: str, input_file: InputFile) -> tuple[tuple[str, str], ItemMeta]:
    row = dict(zip(input_file.columns, _cells(text, input_file), strict=True))
    for key in ITEM_COLUMNS:
        if not row[key]:
            raise Reject("missing_field", key)
    meta = ItemMeta(
        category=row.get("category", ""),
        brand=row.get("brand", ""),
        price_bucket=row.get("price_bucket", ""),
        tags=split_tags(row.get("tags", "")),
    )
    return (row["domain"], row["item_id"]), meta


# --------------------------------------------------------------------------
# Amazon review data: 2018 (strict JSON lines) and 2014 (JSON reviews,
# Python-literal metadata with `categories: [[...]]`).


def _load_object(text: str) -> dict[str, Any]:
    stripped = text.lstrip()
    # 2014 metadata is Python literals (single quotes); try that first for it
    # and JSON first for everything else, falling back to the other.
    loaders = (_literal, json.loads) if stripped.startswith("{'") else (json.loads, _literal)
    for load in loaders:
        try:
            value = load(text)
            break
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    else:
        raise Reject("bad_json")
    if not isinstance(value, dict):
        raise Reject("not_an_object")
    return value


def _literal(text: str) -> Any:
    # Never `eval`: literal_eval only builds literals, it runs no code.
    return ast.literal_eval(text)


def parse_amazon_review(
    text: str, input_file: InputFile
) -> tuple[str, str, str, int, float | None]:
    record = _load_object(text)
    user = _required_str(record, "reviewerID")
    item = _required_str(record, "asin")
    if "unixReviewTime" not in record:
        raise Reject("missing_field", "unixReviewTime")
    timestamp = _timestamp(record["unixReviewTime"])
    if "overall" not in record:
        raise Reject("missing_field", "overall")
    rating = _rating(record["overall"])
    return user, input_file.domain, item, timestamp, rating


_IMG_ALT = re.compile(r"""alt\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def _clean_category(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if text.startswith("<"):
        # Some 2018 `main_cat` values are an <img> tag whose alt is the name.
        match = _IMG_ALT.search(text)
        text = match.group(1) if match else ""
    return html.unescape(text).strip()


def category_from_path(path: Sequence[Any], level: int) -> str:
    names = [name for name in (_clean_category(v) for v in path) if name]
    if not names:
        return ""
    if level < 0 or level >= len(names):
        return names[-1]
    return names[level]


def amazon_category(record: dict[str, Any], level: int) -> str:
    """The category of a 2018 (`category`, `main_cat`) or 2014 record."""
    path = record.get("category")
    if isinstance(path, list) and path:
        name = category_from_path(path, level)
        if name:
            return name
    paths = record.get("categories")
    if isinstance(paths, list):
        for path in paths:
            if isinstance(path, list):
                name = category_from_path(path, level)
                if name:
                    return name
    return _clean_category(record.get("main_cat"))


def parse_amazon_meta(
    text: str, input_file: InputFile, category_level: int
) -> tuple[tuple[str, str], ItemMeta]:
    """An item's category and brand; Amazon gives no price bucket or tags.

    2018 `price` is a free-text dollar string (often empty or a range), not a
    bucket, so it is left unknown rather than bucketed by a guess.
    """
    record = _load_object(text)
    item = _required_str(record, "asin")
    # Brands share the categories' markup (HTML entities, stray spaces).
    meta = ItemMeta(
        category=amazon_category(record, category_level),
        brand=_clean_category(record.get("brand")),
    )
    return (input_file.domain, item), meta


def parser_for(input_file: InputFile, category_level: int) -> Callable[[str], Any]:
    """The line parser of the file's kind, as `parse(text) -> record`."""
    if input_file.kind == KIND_INTERACTIONS:
        return functools.partial(parse_interaction_row, input_file=input_file)
    if input_file.kind == KIND_ITEMS:
        return functools.partial(parse_item_row, input_file=input_file)
    if input_file.kind == KIND_AMAZON_REVIEWS:
        return functools.partial(parse_amazon_review, input_file=input_file)
    if input_file.kind == KIND_AMAZON_META:
        return functools.partial(
            parse_amazon_meta, input_file=input_file, category_level=category_level
        )
    raise ValueError(f"unknown input kind {input_file.kind!r}")
