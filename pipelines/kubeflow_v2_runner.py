"""Compiles the SITN pipeline to a Kubeflow Pipelines V2 / Vertex AI Pipelines JSON spec.

    python pipelines/kubeflow_v2_runner.py --output runs/kubeflow/sitn_pipeline.json \\
        --image REGISTRY/sitn-tf:0.1.0 --pipeline-root gs://BUCKET/pipelines \\
        --data gs://BUCKET/data/books_movies --serving-model-dir gs://BUCKET/serving/sitn

It compiles only; submit the JSON with the Vertex AI or KFP client. The image
must hold this repository's packages (`pip install .`) on top of TFX 1.21.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import sitn_pipeline
from sitn_tf.config import load_config


def compile_pipeline(
    output: str,
    *,
    image: str,
    pipeline_root: str,
    data_root: str,
    serving_model_dir: str,
    schema_path: str = sitn_pipeline.SCHEMA_PATH,
    config_path: str | None = None,
    pretrain: bool = True,
    pipeline_name: str = sitn_pipeline.PIPELINE_NAME,
) -> str:
    """Writes the pipeline's JSON spec to `output` and returns the path."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    config = load_config(config_path)
    if not pretrain:
        config = config.updated({"run": {"pretrain": False}}, source="--no-pretrain")
    pipeline = sitn_pipeline.create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        data_root=data_root,
        serving_model_dir=serving_model_dir,
        schema_path=schema_path,
        config=config,
        # Remote runners take their Beam options from the caller, not the
        # local multi-processing defaults.
        beam_pipeline_args=[],
    )
    dag_runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output)),
        output_filename=os.path.basename(output),
    )
    dag_runner.run(pipeline)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    import sitn_tf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        default=os.path.join(sitn_pipeline.REPO_ROOT, "runs", "kubeflow", "sitn_pipeline.json"),
    )
    parser.add_argument("--image", default=f"sitn-tf:{sitn_tf.__version__}")
    parser.add_argument("--pipeline-root", default="gs://YOUR_BUCKET/pipelines")
    parser.add_argument("--data", default="gs://YOUR_BUCKET/data")
    parser.add_argument("--serving-model-dir", default="gs://YOUR_BUCKET/serving_model/sitn")
    parser.add_argument(
        "--schema",
        default=sitn_pipeline.SCHEMA_PATH,
        help="feature_specs/schema.pbtxt as the workers see it (e.g. a gs:// copy)",
    )
    parser.add_argument("--config", help="as for sitn_pipeline.py")
    parser.add_argument("--no-pretrain", action="store_true")
    args = parser.parse_args(argv)
    path = compile_pipeline(
        args.output,
        image=args.image,
        pipeline_root=args.pipeline_root,
        data_root=args.data,
        serving_model_dir=args.serving_model_dir,
        schema_path=args.schema,
        config_path=args.config,
        pretrain=not args.no_pretrain,
    )
    print(f"[sitn] Kubeflow V2 pipeline spec written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
