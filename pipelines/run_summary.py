"""What a pipeline run did, read back from ML Metadata and the Evaluator's output.

`summarize` returns, for the latest run of a pipeline: each component's state
(`COMPLETE`, `CACHED`, `FAILED`, ...) and wall time, each component's output
artifact URIs by type, the test metrics per slice, whether the model was
blessed, and where it was pushed; with the optional "retrieval" Trainer, its
eval Recall@K beside the popularity baseline (`retrieval`) and its model.
"""

from __future__ import annotations

import os
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from sitn_tf.files import read_json

PIPELINE_RUN = "pipeline_run"
NODE = "node"
RETRIEVAL_NODE = "retrieval"
# Written by pipelines/retrieval_trainer.py into its ModelRun artifact.
RETRIEVAL_SUMMARY_FILE = "retrieval_summary.json"
RETRIEVAL_KEYS = ("eval_metrics", "baselines", "best_epoch", "epochs_run", "stopped_early", "data")


def retrieval_metrics(model_run_uri: str) -> dict[str, Any]:
    """The retrieval Trainer's eval metrics, baseline and convergence, from its ModelRun."""
    summary = read_json(os.path.join(model_run_uri, RETRIEVAL_SUMMARY_FILE))
    return {key: summary[key] for key in RETRIEVAL_KEYS}


def _value(value: metadata_store_pb2.Value) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def eval_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """`{slice: {metric: value}}` from a TFMA output; slice "" is overall."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    metrics: dict[str, dict[str, float]] = {}
    for slice_key, by_output in result.slicing_metrics:
        name = ",".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in slice_key)
        flat = {}
        for by_sub_key in by_output.values():
            for values in by_sub_key.values():
                for metric, value in values.items():
                    if "doubleValue" in value:
                        flat[metric] = float(value["doubleValue"])
        metrics[name] = flat
    return metrics


def summarize(metadata_path: str, pipeline_name: str) -> dict[str, Any]:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)

    node_prefix = f"{pipeline_name}."
    runs = [
        run
        for run in store.get_contexts_by_type(PIPELINE_RUN)
        if any(
            c.name.startswith(node_prefix)
            for e in store.get_executions_by_context(run.id)[:1]
            for c in store.get_contexts_by_execution(e.id)
        )
    ]
    if not runs:
        raise ValueError(f"no run of pipeline '{pipeline_name}' in {metadata_path}")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    node_type = store.get_context_type(NODE).id

    components: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        nodes = [
            c.name for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type
        ]
        node = nodes[0][len(node_prefix) :] if nodes else f"execution-{execution.id}"
        components[node] = {
            "state": metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            "seconds": round(
                (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000,
                1,
            ),
        }
        events = store.get_events_by_execution_ids([execution.id])
        ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
        outputs[node] = store.get_artifacts_by_id(ids) if ids else []

    summary: dict[str, Any] = {
        "run_id": run.name,
        "components": components,
        # Execution order: JSON writers may sort `components` by name.
        "component_order": list(components),
        "artifacts": {},
    }
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    for node, artifacts in outputs.items():
        for artifact in artifacts:
            kind = type_names.get(artifact.type_id)
            summary["artifacts"].setdefault(node, {})[kind] = artifact.uri
            props = {k: _value(v) for k, v in artifact.custom_properties.items()}
            if kind == "ModelEvaluation":
                summary["evaluation_uri"] = artifact.uri
                summary["test_metrics"] = eval_metrics(artifact.uri)
            elif kind == "ModelBlessing":
                summary["blessed"] = bool(props.get("blessed", 0))
            elif kind == "PushedModel":
                summary["pushed"] = bool(props.get("pushed", 0))
                if props.get("pushed_destination"):
                    summary["pushed_model"] = props["pushed_destination"]
            elif kind == "Model" and node == "finetune":
                summary["model_uri"] = artifact.uri
            elif kind == "Model" and node == RETRIEVAL_NODE:
                summary["retrieval_model_uri"] = artifact.uri
            elif kind == "ModelRun" and node == RETRIEVAL_NODE:
                summary["retrieval"] = retrieval_metrics(artifact.uri)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"[sitn] run {summary['run_id']}: {summary.get('wall_seconds', '?')} s in all"]
    for node, info in summary["components"].items():
        lines.append(f"  {node:<32} {info['state']:<9} {info['seconds']:>8.1f} s")
    overall = summary.get("test_metrics", {}).get("", {})
    if overall:
        lines.append(
            "[sitn] test AUC {auc:.4f}  logloss {ll:.4f}  ({n:.0f} examples)".format(
                auc=overall.get("auc", float("nan")),
                ll=overall.get("binary_crossentropy", float("nan")),
                n=overall.get("example_count", 0),
            )
        )
        for name, metrics in sorted(summary["test_metrics"].items()):
            if name:
                lines.append(
                    f"  {name:<32} AUC {metrics.get('auc', float('nan')):.4f}  "
                    f"logloss {metrics.get('binary_crossentropy', float('nan')):.4f}  "
                    f"n={metrics.get('example_count', 0):.0f}"
                )
    retrieval = summary.get("retrieval")
    if retrieval:
        model, popular = retrieval["eval_metrics"], retrieval["baselines"]["popularity"]
        lines.append(
            "[sitn] retrieval eval Recall@10 {m10:.4f} @50 {m50:.4f} (tail {t50:.4f}); "
            "popularity {p10:.4f} / {p50:.4f} (tail {pt50:.4f}); best epoch {best} of {run}".format(
                m10=model["recall@10"],
                m50=model["recall@50"],
                t50=model["recall@50_tail"],
                p10=popular["recall@10"],
                p50=popular["recall@50"],
                pt50=popular["recall@50_tail"],
                best=retrieval["best_epoch"],
                run=retrieval["epochs_run"],
            )
        )
    lines.append(f"[sitn] blessed: {summary.get('blessed')}")
    if summary.get("pushed_model"):
        lines.append(f"[sitn] pushed model: {summary['pushed_model']}")
    else:
        lines.append("[sitn] no model pushed (not blessed)")
    return "\n".join(lines)
