"""`sitn-tf serve`: TF Serving's REST API for pushed SavedModels, on KServe's ModelServer.

The runtime is KServe's `ModelServer` (FastAPI + uvicorn): it owns the HTTP
server, JSON decoding, the model registry, error responses (`{"error": ...}`),
Prometheus metrics at `/metrics` and SIGTERM handling. Its V1 protocol is TF
Serving's `POST /v1/models/<name>:predict`; this module adds what V1 lacks so
that a client written for TF Serving works unchanged:

* `GET /v1/models/<name>[/versions/<v>]`: TF Serving's version status
  (`{"model_version_status": [{"version": "3", "state": "AVAILABLE", ...}]}`),
  in place of KServe's `{"name": ..., "ready": ...}`;
* `GET /v1/models/<name>[/versions/<v>]/metadata`: the SignatureDefs, as TF
  Serving writes them;
* `POST /v1/models/<name>/versions/<v>:predict`.

`SavedModelVersions` is the KServe model. Like TF Serving with its default
version policy, it serves the highest numbered version under
`model_base_path` (a folder holding `saved_model.pb`) and polls the folder:
a version pushed later is loaded in the background and swapped in, and
requests in flight finish on the version they started with. Every signature
of the SavedModel is served by name; requests are checked against the
signature's input specs (`pipelines.rest_format`) before the model runs.

Status codes: 400 for any problem with a request (malformed JSON, missing or
unknown inputs, wrong dtype or shape, empty or oversized batch, bytes that
are not a `tf.Example`), 404 for an unknown model, version or signature.
SIGTERM stops accepting connections, lets requests in flight finish (up to
`--grace_seconds`) and exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import Request

from pipelines import rest_format

logger = logging.getLogger("sitn_tf.serve")

DEFAULT_MAX_BATCH_SIZE = 1024
# Internal header: the versioned predict route passes the version requested in
# its path to the model through KServe's data plane.
VERSION_HEADER = "x-sitn-model-version"
_VERSION_DIR = re.compile(r"^[0-9]+$")


class VersionNotFound(LookupError):
    """The request names a version that is not being served (HTTP 404)."""


def available_versions(model_base_path: str) -> list[int]:
    """Numbered subfolders of `model_base_path` holding a SavedModel, ascending."""
    try:
        names = os.listdir(model_base_path)
    except FileNotFoundError:
        return []
    return sorted(
        int(name)
        for name in names
        if _VERSION_DIR.match(name)
        and os.path.isfile(os.path.join(model_base_path, name, "saved_model.pb"))
    )


def signature_defs(export_dir: str) -> dict[str, Any]:
    """The `serve` MetaGraph's SignatureDefs as TF Serving's metadata JSON writes them."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    graphs = [g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags]
    if not graphs:
        raise ValueError(f"{export_dir} has no MetaGraph tagged 'serve'")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in graphs[0].signature_def.items():
        # The init op is a SavedModel detail, not a servable signature.
        if not name.startswith("__"):
            signature_map.signature_def[name].CopyFrom(signature)
    return json_format.MessageToDict(
        signature_map,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


@dataclass(frozen=True)
class LoadedVersion:
    """One loaded version: its signatures, their input specs, its metadata."""

    version: int
    path: str
    loaded: Any  # the tf.saved_model.load object; it keeps the variables alive
    functions: Mapping[str, Any]
    input_specs: Mapping[str, Mapping[str, Any]]
    metadata: Mapping[str, Any]

    @classmethod
    def load(cls, path: str, version: int) -> LoadedVersion:
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        functions = dict(loaded.signatures)
        if not functions:
            raise ValueError(f"{path} has no signatures to serve")
        input_specs = {
            name: dict(function.structured_input_signature[1])
            for name, function in functions.items()
        }
        return cls(version, path, loaded, functions, input_specs, signature_defs(path))

    def run(self, request: rest_format.Request) -> dict[str, np.ndarray]:
        """Calls the request's signature; TF's argument errors become `BadRequest`."""
        import tensorflow as tf

        function = self.functions[request.signature_name]
        try:
            outputs = function(**{n: tf.constant(v) for n, v in request.inputs.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as err:
            # E.g. inputs whose batch sizes differ: a bad request, not a server failure.
            message = getattr(err, "message", str(err)).strip().splitlines()[0]
            raise rest_format.BadRequest(
                f"signature {request.signature_name!r} rejected the inputs: {message}"
            ) from None
        except UnicodeDecodeError:
            # TF quotes the offending input in its error message; when those are
            # not UTF-8 bytes (e.g. garbage where a serialized tf.Example belongs)
            # the message itself cannot be decoded, and this is what reaches Python.
            raise rest_format.BadRequest(
                f"signature {request.signature_name!r} rejected the inputs: a string input "
                "could not be parsed (e.g. bytes that are not a serialized tf.Example)"
            ) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def _import_kserve() -> tuple[Any, Any, Any]:
    """Imports KServe, hiding this process's argv from it.

    `kserve.model_server` parses `sys.argv` when imported (for its own flags);
    `sitn-tf serve`'s flags are not its business.
    """
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        import kserve
        from kserve import errors, model_server
    finally:
        sys.argv = argv
    return kserve, errors, model_server


kserve, kserve_errors, kserve_model_server = _import_kserve()


class SavedModelVersions(kserve.Model):
    """A KServe model serving the newest SavedModel version under a base path.

    Args:
      name: the model name in the URL (`/v1/models/<name>`).
      model_base_path: folder of numbered versions, e.g. `runs/serving_model/sitn`.
      max_batch_size: the largest batch (first dimension of any input) accepted.
      poll_seconds: how often to look for a new version (TF Serving's
        `--file_system_poll_wait_seconds`); 0 turns polling off.
    """

    def __init__(
        self,
        name: str,
        model_base_path: str,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        poll_seconds: float = 1.0,
    ):
        if not name or "/" in name or ":" in name:
            raise ValueError(f"model name must be non-empty without '/' or ':', got {name!r}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if poll_seconds < 0:
            raise ValueError(f"poll_seconds must be >= 0, got {poll_seconds}")
        super().__init__(name)
        self.model_base_path = os.path.abspath(model_base_path)
        self.max_batch_size = max_batch_size
        self.poll_seconds = poll_seconds
        self._current: LoadedVersion | None = None
        self._failed: set[tuple[int, float]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- versions
    @property
    def current(self) -> LoadedVersion:
        current = self._current
        if current is None:
            raise VersionNotFound(f"model {self.name!r} has no version loaded")
        return current

    def poll(self) -> bool:
        """Loads the highest version on disk when it is not the one served.

        A version that fails to load is logged and skipped until its
        `saved_model.pb` changes; the version being served stays. Returns
        whether a new version was swapped in.
        """
        versions = available_versions(self.model_base_path)
        if not versions:
            return False
        newest = versions[-1]
        current = self._current
        if current is not None and current.version == newest:
            return False
        path = os.path.join(self.model_base_path, str(newest))
        try:
            stamp = (newest, os.path.getmtime(os.path.join(path, "saved_model.pb")))
        except OSError:
            return False
        if stamp in self._failed:
            return False
        try:
            loaded = LoadedVersion.load(path, newest)
        except Exception:
            logger.exception("could not load version %d of %r from %s", newest, self.name, path)
            self._failed.add(stamp)
            return False
        # One reference assignment: each request reads `_current` once, so it
        # runs wholly on the old or wholly on the new version.
        self._current = loaded
        logger.info("serving version %d of %r from %s", newest, self.name, path)
        return True

    def load(self) -> bool:
        self.poll()
        if self._current is None:
            raise FileNotFoundError(
                f"--model_base_path {self.model_base_path}: no numbered version folder with "
                "a saved_model.pb (expected e.g. "
                f"{os.path.join(self.model_base_path, '1', 'saved_model.pb')})"
            )
        self.ready = True
        return self.ready

    def start(self) -> None:
        if self.poll_seconds and self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name=f"{self.name}-version-poll", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # the watcher must outlive any one bad poll
                logger.exception("polling %s failed", self.model_base_path)

    def version(self, requested: str | None) -> LoadedVersion:
        """The version a request asks for (None: the one served)."""
        current = self.current
        if requested is None:
            return current
        if not requested.isdigit():
            raise VersionNotFound(f"version must be a number, got {requested!r}")
        if int(requested) != current.version:
            raise VersionNotFound(
                f"Servable not found for request: Specific({self.name}, {requested}); "
                f"serving version {current.version}"
            )
        return current

    # ------------------------------------------------------------ KServe hooks
    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        served = self.version((headers or {}).get(VERSION_HEADER))
        try:
            request = rest_format.parse_request(payload, served.input_specs, self.max_batch_size)
            # The model runs on KServe's thread pool so that the event loop
            # keeps accepting and parsing other requests meanwhile.
            outputs = await asyncio.get_running_loop().run_in_executor(None, served.run, request)
            batch = len(payload["instances"]) if request.row_format else 0
            return rest_format.format_response(outputs, request.row_format, batch)
        except rest_format.BadRequest as err:
            raise kserve_errors.InvalidInput(str(err)) from None

    # ------------------------------------------------------- TF Serving shapes
    def status(self, requested: str | None = None) -> dict[str, Any]:
        served = self.version(requested)
        return {
            "model_version_status": [
                {
                    "version": str(served.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def metadata(self, requested: str | None = None) -> dict[str, Any]:
        served = self.version(requested)
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(served.version)},
            "metadata": {"signature_def": served.metadata},
        }


def add_tf_serving_routes(app: Any, dataplane: Any) -> None:
    """Adds TF Serving's status, metadata and versioned predict routes to KServe's app.

    They must be added before KServe adds its own (when the server starts):
    routes match in order, and TF Serving's status replaces KServe's
    `GET /v1/models/<name>` readiness answer.
    """
    from fastapi.responses import JSONResponse, Response

    def model(name: str) -> SavedModelVersions:
        found = dataplane.get_model_from_registry(name)  # ModelNotFound -> 404
        if not isinstance(found, SavedModelVersions):
            raise VersionNotFound(f"model {name!r} has no versions")
        return found

    async def status(model_name: str) -> dict:
        return model(model_name).status()

    async def version_status(model_name: str, version: str) -> dict:
        return model(model_name).status(version)

    async def metadata(model_name: str) -> dict:
        return model(model_name).metadata()

    async def version_metadata(model_name: str, version: str) -> dict:
        return model(model_name).metadata(version)

    async def predict(request: Request, model_name: str, version: str | None = None):
        served = model(model_name)
        if version is not None:
            served.version(version)
        try:
            # TF Serving reads every body as JSON, whatever its content type
            # (`curl -d` sends a form type, which KServe's decoder passes on raw).
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as err:
            raise kserve_errors.InvalidInput(f"malformed JSON in the request body: {err}") from None
        headers = dict(request.headers.items())
        headers.pop(VERSION_HEADER, None)
        if version is not None:
            headers[VERSION_HEADER] = version
        response, _ = await dataplane.infer(model_name=model_name, request=body, headers=headers)
        # orjson writes numpy-free lists fast; FastAPI deprecates ORJSONResponse.
        return Response(content=orjson.dumps(response), media_type="application/json")

    async def version_predict(request: Request, model_name: str, version: str):
        return await predict(request, model_name, version)

    async def not_found(_request: Any, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": str(exc)})

    prefix = "/v1/models/{model_name}"
    app.add_api_route(prefix, status, methods=["GET"])
    app.add_api_route(prefix + "/versions/{version}", version_status, methods=["GET"])
    app.add_api_route(prefix + "/metadata", metadata, methods=["GET"])
    app.add_api_route(prefix + "/versions/{version}/metadata", version_metadata, methods=["GET"])
    # KServe's own `:predict` route would do, but for its JSON decoding (see above).
    app.add_api_route(prefix + ":predict", predict, methods=["POST"], response_model=None)
    app.add_api_route(
        prefix + "/versions/{version}:predict",
        version_predict,
        methods=["POST"],
        response_model=None,
    )
    app.add_exception_handler(VersionNotFound, not_found)
    app.add_exception_handler(rest_format.SignatureNotFound, not_found)


@contextlib.contextmanager
def _rest_host(model_server: Any, host: str) -> Iterator[None]:
    """Makes KServe's REST server listen on `host`.

    KServe 0.21 always binds 0.0.0.0; the class is swapped for the duration of
    `ModelServer.start`, which builds the REST server.
    """
    base = model_server.RESTServer

    class HostRESTServer(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.config.host = host

    model_server.RESTServer = HostRESTServer
    try:
        yield
    finally:
        model_server.RESTServer = base


def serve(
    model_base_path: str,
    model_name: str,
    port: int,
    *,
    host: str = "0.0.0.0",
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    poll_seconds: float = 1.0,
    grace_seconds: int = 30,
    access_log: bool = False,
) -> int:
    """Runs the server until SIGTERM or SIGINT; returns the exit status."""
    if not 0 < port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {port}")
    if grace_seconds < 0:
        raise ValueError(f"--grace_seconds must be >= 0, got {grace_seconds}")
    if not os.path.isdir(model_base_path):
        raise FileNotFoundError(f"--model_base_path {model_base_path}: no such folder")
    model = SavedModelVersions(
        model_name, model_base_path, max_batch_size=max_batch_size, poll_seconds=poll_seconds
    )
    model.load()
    server = kserve_model_server.ModelServer(
        http_port=port,
        enable_grpc=False,
        workers=1,
        grace_period=grace_seconds,
        enable_latency_logging=False,
        enable_docs_url=False,
    )
    add_tf_serving_routes(kserve_model_server.app, server.dataplane)
    if not access_log:
        # A log line per request costs throughput; TF Serving writes none either.
        logging.getLogger("uvicorn.access").disabled = True
    print(
        f"sitn-tf serve: version {model.current.version} of {model_name!r} on "
        f"http://{host}:{port}/v1/models/{model_name}",
        flush=True,
    )
    with _rest_host(kserve_model_server, host):
        server.start([model])
    logger.info("stopped")
    return 0


def run(args: argparse.Namespace) -> int:
    return serve(
        args.model_base_path,
        args.model_name,
        args.port,
        host=args.host,
        max_batch_size=args.max_batch_size,
        poll_seconds=args.file_system_poll_wait_seconds,
        grace_seconds=args.grace_seconds,
        access_log=args.access_log,
    )
