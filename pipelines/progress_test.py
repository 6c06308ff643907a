"""ProgressMonitor on a hand-built ML Metadata store (no pipeline run)."""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipelines import progress


def _writer(path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return metadata_store.MetadataStore(config)


def _execution(store, type_id, context_type_id, node, state):
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=state)
    [execution_id] = store.put_executions([execution])
    context = metadata_store_pb2.Context(type_id=context_type_id, name=f"p.{node}-{execution_id}")
    [context_id] = store.put_contexts([context])
    association = metadata_store_pb2.Association(execution_id=execution_id, context_id=context_id)
    store.put_attributions_and_associations([], [association])
    return execution_id


def test_reports_only_executions_of_this_run(tmp_path, capsys):
    path = str(tmp_path / "metadata.db")
    store = _writer(path)
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="component"))
    context_type_id = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    done = metadata_store_pb2.Execution.COMPLETE
    running = metadata_store_pb2.Execution.RUNNING
    # Many earlier runs: more executions than one poll reads.
    for i in range(progress._NEWEST + 10):
        _execution(store, type_id, context_type_id, f"old{i}", done)

    monitor = progress.ProgressMonitor(path, "p")
    assert monitor.after_id == progress._NEWEST + 10
    transform = _execution(store, type_id, context_type_id, "Transform", running)
    _execution(store, type_id, context_type_id, "Trainer", done)
    monitor.poll()
    execution = store.get_executions_by_id([transform])[0]
    execution.last_known_state = metadata_store_pb2.Execution.CACHED
    store.put_executions([execution])
    monitor.poll()
    monitor.poll()  # nothing new: no repeated lines

    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert [line.split(" (")[0] for line in lines] == [
        f"Transform-{transform} ...",
        f"Trainer-{transform + 1} done",
        f"Transform-{transform} cached",
    ]
    assert not any("old" in line for line in lines)


def test_no_database_yet_starts_from_zero(tmp_path):
    assert progress.ProgressMonitor(str(tmp_path / "missing.db"), "p").after_id == 0


def test_a_poll_reads_a_bounded_number_of_executions(tmp_path, monkeypatch):
    path = str(tmp_path / "metadata.db")
    store = _writer(path)
    type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="component"))
    context_type_id = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    for i in range(progress._NEWEST * 2):
        _execution(
            store, type_id, context_type_id, f"old{i}", metadata_store_pb2.Execution.COMPLETE
        )
    read: list[int] = []
    real_store = progress._store

    class Counting:
        def __init__(self, inner):
            self._inner = inner

        def get_executions(self, *args, **kwargs):
            executions = self._inner.get_executions(*args, **kwargs)
            read.append(len(executions))
            return executions

        def __getattr__(self, name):
            return getattr(self._inner, name)

    monkeypatch.setattr(progress, "_store", lambda p: Counting(real_store(p)))
    monitor = progress.ProgressMonitor(path, "p")
    monitor.poll()
    assert read and max(read) <= progress._NEWEST
