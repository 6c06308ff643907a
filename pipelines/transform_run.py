"""The pipeline's own Transform, run alone: ExampleGen ... Transform, then stop.

`sitn-tf experiment` trains many variants and seeds on one Transform output,
and `sitn-tf bench` times training on one; both get it here, from
`create_pipeline(..., transform_only=True)`: the same components, schema,
anomaly gate and `preprocessing_fn` as a full pipeline run, cached in its own
ML Metadata store, so a second call with the same data and settings is a
cache hit.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence

from pipelines import defaults

SPLITS = defaults.SPLITS


@dataclasses.dataclass(frozen=True)
class TransformOutputs:
    """Artifact URIs of one Transform run.

    Attributes:
        transform_graph: the TransformGraph folder (`tft.TFTransformOutput(...)`).
        examples: the transformed Examples artifact (one folder per split).
        states: each component's execution state (`complete` or `cached`).
    """

    transform_graph: str
    examples: str
    states: dict[str, str]

    def split_files(self, split: str) -> str:
        """File pattern of one split's transformed examples, by TFX's own layout."""
        from tfx.types import artifact_utils, standard_artifacts

        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}")
        artifact = standard_artifacts.Examples()
        artifact.uri = self.examples
        artifact.split_names = artifact_utils.encode_split_names(list(SPLITS))
        return os.path.join(artifact_utils.get_split_uri([artifact], split), "*")


def run_transform(
    data_root: str,
    output: str,
    config=None,
    *,
    beam_pipeline_args: Sequence[str] | None = None,
    pipeline_name: str = f"{defaults.PIPELINE_NAME}-transform",
) -> TransformOutputs:
    """Runs ExampleGen ... Transform of `config` (a `sitn_tf.config.Config`) on `data_root`.

    Artifacts go under `output/transform/`, ML Metadata to `output/metadata.db`.
    """
    from tfx import v1 as tfx

    from pipelines import run_summary, sitn_pipeline
    from pipelines.runner import quiet_absl_info

    metadata_path = os.path.join(output, "metadata.db")
    pipeline = sitn_pipeline.create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=os.path.join(output, "transform"),
        data_root=data_root,
        serving_model_dir=os.path.join(output, "unused-serving"),
        config=config,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        beam_pipeline_args=sitn_pipeline.merge_beam_args(beam_pipeline_args or ()),
        transform_only=True,
    )
    start = time.monotonic()
    with quiet_absl_info():
        tfx.orchestration.LocalDagRunner().run(pipeline)
    summary = run_summary.summarize(metadata_path, pipeline_name)
    states = {node: info["state"] for node, info in summary["components"].items()}
    outputs = summary["artifacts"].get("Transform", {})
    missing = [k for k in ("TransformGraph", "Examples") if k not in outputs]
    if missing:
        raise RuntimeError(f"the Transform run left no {missing} artifacts; states: {states}")
    print(f"[transform] {states} in {time.monotonic() - start:.1f} s", flush=True)
    return TransformOutputs(
        transform_graph=outputs["TransformGraph"], examples=outputs["Examples"], states=states
    )
