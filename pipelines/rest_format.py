"""TF Serving's REST predict format: JSON requests to tensors, tensors to JSON.

The rules are TF Serving's (https://www.tensorflow.org/tfx/serving/api_rest):

* `{"signature_name": ..., "instances": [...]}` is the row format: one entry per
  example. With one input, an entry is that input's value (or an object naming
  it); with several, an object `{input_name: value}`. Entries are stacked along a
  new first axis. The response is `{"predictions": [...]}`, one entry per row:
  the value of the only output, else an object of all outputs.
* `{"signature_name": ..., "inputs": ...}` is the columnar format: the whole
  tensor of each input, as `{input_name: value}` or, with one input, the value
  itself. The response is `{"outputs": ...}`: the only output's value, else an
  object of all outputs.
* A string value may be `{"b64": "<base64>"}` (the way to send serialized
  `tf.Example`s); other strings are sent as UTF-8. String outputs come back as
  UTF-8 text, or as `{"b64": ...}` when they are not UTF-8.

Every problem with a request raises `BadRequest` with a message that names the
input, the signature or the field at fault; the server answers it with HTTP 400.
Nothing here calls the model.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

DEFAULT_SIGNATURE = "serving_default"


class BadRequest(ValueError):
    """A request the signature cannot take (HTTP 400)."""


class SignatureNotFound(KeyError):
    """The request names a signature the model does not have (HTTP 404)."""

    def __init__(self, name: str, available: list[str]):
        super().__init__(name)
        self.message = (
            f'Serving signature name: "{name}" not found in signature def; '
            f"the model has {', '.join(sorted(available))}"
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Request:
    """A parsed predict request: the signature, the input tensors, the format."""

    signature_name: str
    inputs: dict[str, np.ndarray]
    row_format: bool


def _decode_strings(value: Any, where: str) -> Any:
    """Nested lists of str / `{"b64": ...}` -> nested lists of bytes."""
    if isinstance(value, list):
        return [_decode_strings(v, where) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise BadRequest(f'{where}: a string object must be {{"b64": "<base64>"}}, got {value}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as err:
            raise BadRequest(f"{where}: invalid base64 in b64 value ({err})") from None
    raise BadRequest(
        f"{where}: expected a string (or {{'b64': ...}}), got {type(value).__name__} {value!r}"
    )


def _to_array(value: Any, spec: tf.TensorSpec, where: str) -> np.ndarray:
    """One input's JSON value -> an ndarray of the spec's dtype, shape checked."""
    dtype = spec.dtype
    if dtype == tf.string:
        decoded = _decode_strings(value, where)
        try:
            array = np.array(decoded, dtype=object)
        except ValueError as err:  # ragged nesting
            raise BadRequest(f"{where}: values do not form a rectangular tensor ({err})") from None
        if array.dtype != object or any(not isinstance(v, bytes) for v in array.flat):
            raise BadRequest(f"{where}: values do not form a rectangular tensor of strings")
    else:
        try:
            array = np.array(value)
        except ValueError as err:
            raise BadRequest(f"{where}: values do not form a rectangular tensor ({err})") from None
        kind = array.dtype.kind
        if array.size and kind not in "biuf":
            raise BadRequest(
                f"{where}: expected {dtype.name} numbers, got {_json_kind(array)} values"
            )
        if array.size and dtype.is_integer and kind == "f":
            raise BadRequest(f"{where}: expected {dtype.name} integers, got floats")
        if array.size and dtype.is_bool and kind not in "b":
            raise BadRequest(f"{where}: expected booleans, got {_json_kind(array)} values")
        try:
            array = array.astype(dtype.as_numpy_dtype)
        except (TypeError, ValueError, OverflowError) as err:
            raise BadRequest(f"{where}: cannot be read as {dtype.name} ({err})") from None
    _check_shape(array.shape, spec, where)
    return array


def _json_kind(array: np.ndarray) -> str:
    return {"U": "string", "S": "string", "O": "mixed or object"}.get(
        array.dtype.kind, array.dtype.name
    )


def _check_shape(shape: tuple[int, ...], spec: tf.TensorSpec, where: str) -> None:
    expected = spec.shape
    if expected.rank is None:
        return
    if len(shape) != expected.rank:
        raise BadRequest(
            f"{where}: expected a tensor of rank {expected.rank} (shape {_shape_str(expected)}), "
            f"got shape {list(shape)}"
        )
    for axis, (got, want) in enumerate(zip(shape, expected.as_list(), strict=True)):
        if want is not None and got != want:
            raise BadRequest(
                f"{where}: dimension {axis} must be {want} (shape {_shape_str(expected)}), "
                f"got shape {list(shape)}"
            )


def _shape_str(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    sizes = [a.shape[0] for a in inputs.values() if a.ndim > 0]
    return max(sizes) if sizes else 1


def parse_request(
    body: Any,
    signatures: Mapping[str, Mapping[str, tf.TensorSpec]],
    max_batch_size: int,
) -> Request:
    """Parses a decoded JSON body against the model's signatures' input specs.

    Args:
      body: the decoded JSON request.
      signatures: signature name -> {input name: TensorSpec}.
      max_batch_size: the largest first dimension any input may have.

    Raises:
      BadRequest: malformed or mismatched request (HTTP 400).
      SignatureNotFound: unknown `signature_name` (HTTP 404).
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise BadRequest(
            f"unknown field(s) {unknown} in the request; expected signature_name and "
            "one of instances or inputs"
        )
    name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise BadRequest(f"signature_name must be a string, got {name!r}")
    if name not in signatures:
        raise SignatureNotFound(name, list(signatures))
    specs = signatures[name]
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows == has_columns:
        raise BadRequest(
            "the request must have exactly one of 'instances' (row format) or "
            f"'inputs' (columnar format); it has {'both' if has_rows else 'neither'}"
        )
    if has_rows:
        inputs = _rows(body["instances"], name, specs)
    else:
        inputs = _columns(body["inputs"], name, specs)
    batch = _batch_size(inputs)
    if any(a.ndim > 0 and a.shape[0] == 0 for a in inputs.values()):
        raise BadRequest(f"empty batch: signature {name!r} got an input with 0 rows")
    if batch > max_batch_size:
        raise BadRequest(
            f"batch of {batch} is over this server's maximum of {max_batch_size} "
            "(--max_batch_size); split the request"
        )
    return Request(signature_name=name, inputs=inputs, row_format=has_rows)


def _rows(instances: Any, name: str, specs: Mapping[str, tf.TensorSpec]) -> dict:
    if not isinstance(instances, list):
        raise BadRequest(f"'instances' must be a list, got {type(instances).__name__}")
    if not instances:
        raise BadRequest("empty batch: 'instances' is an empty list")
    input_names = sorted(specs)
    columns: dict[str, list[Any]] = {n: [] for n in input_names}
    for i, row in enumerate(instances):
        named = isinstance(row, dict) and set(row) != {"b64"}
        if not named:
            if len(input_names) != 1:
                raise BadRequest(
                    f"instances[{i}] must be an object with the inputs {input_names} of "
                    f"signature {name!r}"
                )
            row = {input_names[0]: row}
        _check_names(set(row), specs, name, f"instances[{i}]")
        for input_name in input_names:
            columns[input_name].append(row[input_name])
    # Each row lacks the batch axis that the signature's spec has.
    return {
        n: _to_array(values, specs[n], f"input {n!r} of signature {name!r}")
        for n, values in columns.items()
    }


def _columns(inputs: Any, name: str, specs: Mapping[str, tf.TensorSpec]) -> dict:
    input_names = sorted(specs)
    named = isinstance(inputs, dict) and set(inputs) != {"b64"}
    if not named:
        if len(input_names) != 1:
            raise BadRequest(
                f"'inputs' must be an object with the inputs {input_names} of signature {name!r}"
            )
        inputs = {input_names[0]: inputs}
    _check_names(set(inputs), specs, name, "inputs")
    return {
        n: _to_array(inputs[n], specs[n], f"input {n!r} of signature {name!r}") for n in input_names
    }


def _check_names(got: set[str], specs: Mapping[str, tf.TensorSpec], name: str, where: str):
    missing, extra = sorted(set(specs) - got), sorted(got - set(specs))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if extra:
            parts.append(f"unknown input(s) {extra}")
        raise BadRequest(
            f"{where}: {' and '.join(parts)} for signature {name!r} (its inputs: {sorted(specs)})"
        )


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype.kind in "OS":
        return _strings_out(array.tolist())
    return array.tolist()


def _strings_out(value: Any) -> Any:
    if isinstance(value, list):
        return [_strings_out(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def format_response(outputs: Mapping[str, np.ndarray], row_format: bool, batch: int) -> dict:
    """The JSON response for a signature's outputs (see the module docstring).

    Raises:
      BadRequest: row format, but an output's first dimension is not the batch.
    """
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {"outputs": _jsonable(outputs[names[0]])}
        return {"outputs": {n: _jsonable(outputs[n]) for n in names}}
    for n in names:
        shape = outputs[n].shape
        if not shape or shape[0] != batch:
            raise BadRequest(
                f"output {n!r} has shape {list(shape)}, not one row per instance "
                f"({batch}); send this signature's request in the columnar format ('inputs')"
            )
    if len(names) == 1:
        return {"predictions": _jsonable(outputs[names[0]])}
    columns = {n: _jsonable(outputs[n]) for n in names}
    return {"predictions": [{n: columns[n][i] for n in names} for i in range(batch)]}
