"""Runs the SITN pipeline with TFX's BeamDagRunner (each component a Beam stage).

    python pipelines/beam_runner.py [options]                 # same options as sitn_pipeline.py
    tfx pipeline create --engine beam --pipeline_path pipelines/beam_runner.py
    tfx run create --engine beam --pipeline_name sitn

The pipeline itself is `sitn_pipeline.create_pipeline`; only the orchestrator
differs from `sitn_pipeline.py` (LocalDagRunner).
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import runner

if __name__ == "__main__":
    sys.exit(runner.main(default_runner="beam"))
