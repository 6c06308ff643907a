"""Stage-by-stage progress of a running pipeline, read from ML Metadata.

Every orchestrator records each component execution in MLMD when it starts
(RUNNING) and when it ends (COMPLETE, CACHED or FAILED), so polling MLMD
reports progress the same way for LocalDagRunner and BeamDagRunner, whatever
the components do to Python logging meanwhile.
"""

from __future__ import annotations

import threading
import time

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_DONE = {
    metadata_store_pb2.Execution.COMPLETE: "done",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


# A run of this pipeline records one execution per component (11). The store
# keeps every earlier run too, so each poll reads only the newest executions.
_NEWEST = 256


def _newest_executions(
    store: metadata_store.MetadataStore, limit: int
) -> list[metadata_store_pb2.Execution]:
    options = metadata_store.ListOptions(
        limit=limit, order_by=metadata_store.OrderByField.ID, is_asc=False
    )
    return store.get_executions(list_options=options)


def _max_execution_id(metadata_path: str) -> int:
    try:
        newest = _newest_executions(_store(metadata_path), 1)
    except Exception:  # no database yet: the first run creates it
        return 0
    return newest[0].id if newest else 0


class ProgressMonitor(threading.Thread):
    """Prints `[sitn  12.3s] Transform ...` / `... done (27.1s)` lines while a run goes on."""

    def __init__(self, metadata_path: str, pipeline_name: str, interval: float = 1.0):
        super().__init__(daemon=True, name="sitn-progress")
        self.metadata_path = metadata_path
        self.prefix = f"{pipeline_name}."
        self.interval = interval
        self.after_id = _max_execution_id(metadata_path)
        self.start_time = time.monotonic()
        self._stop_event = threading.Event()
        self._reported: dict[int, str] = {}
        self._start_times: dict[int, float] = {}
        self._nodes: dict[int, str] = {}

    def _print(self, message: str) -> None:
        print(f"[sitn {time.monotonic() - self.start_time:7.1f}s] {message}", flush=True)

    def poll(self) -> None:
        try:
            store = _store(self.metadata_path)
            executions = [e for e in _newest_executions(store, _NEWEST) if e.id > self.after_id]
        except Exception:  # database not created yet, or busy: try again later
            return
        for execution in sorted(executions, key=lambda e: e.id):
            if execution.id not in self._nodes:
                names = [
                    c.name[len(self.prefix) :]
                    for c in store.get_contexts_by_execution(execution.id)
                    if c.name.startswith(self.prefix)
                ]
                self._nodes[execution.id] = names[0] if names else f"execution {execution.id}"
            node = self._nodes[execution.id]
            state = execution.last_known_state
            if execution.id not in self._start_times:
                self._start_times[execution.id] = time.monotonic()
                if state not in _DONE:
                    self._print(f"{node} ...")
            if state in _DONE and self._reported.get(execution.id) != "end":
                self._reported[execution.id] = "end"
                seconds = (
                    execution.last_update_time_since_epoch - execution.create_time_since_epoch
                ) / 1000
                self._print(f"{node} {_DONE[state]} ({seconds:.1f}s)")

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.poll()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.poll()  # whatever finished since the last look
