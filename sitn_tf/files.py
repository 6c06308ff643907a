"""Reading and writing the project's small JSON and YAML files, in one place.

Every summary, report and config the project writes goes through
`write_json`: sorted keys, two-space indent, a final newline, numpy scalars
and arrays as plain numbers and lists, and an atomic replace on local disks
(a reader never sees half a file). Paths with a scheme (`gs://...`) go
through `tf.io.gfile`, so a Trainer running on Vertex AI writes the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any


def _plain(value: Any) -> Any:
    """`json.dump`'s `default`: numpy scalars and arrays become Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def dumps_json(payload: Any, *, allow_nan: bool = True, sort_keys: bool = True) -> str:
    """The text `write_json` writes (also used by the converter, which writes through Beam)."""
    text = json.dumps(payload, indent=2, sort_keys=sort_keys, default=_plain, allow_nan=allow_nan)
    return text + "\n"


def write_json(path: str, payload: Any, *, allow_nan: bool = True) -> None:
    """Writes `payload` to `path` (folders created); `allow_nan=False` refuses NaN and inf."""
    text = dumps_json(payload, allow_nan=allow_nan)
    if "://" in path:
        import tensorflow as tf

        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    with open(path) as f:
        return json.load(f)


def read_mapping(path: str) -> dict[str, Any]:
    """A YAML (`.yaml`/`.yml`) or JSON file that must hold a mapping; empty YAML is `{}`.

    Errors name the file: a missing file, a syntax error, or a top level that
    is not a mapping.
    """
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            given = yaml.safe_load(text) or {}
        else:
            given = json.loads(text)
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        kind = "YAML" if path.endswith((".yaml", ".yml")) else "JSON"
        raise ValueError(f"{path}: not valid {kind}: {err}") from None
    if not isinstance(given, dict):
        raise ValueError(f"{path}: the config must be a mapping, got {type(given).__name__}")
    return given
