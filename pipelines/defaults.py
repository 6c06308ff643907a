"""Names and paths shared by the pipeline modules (importing this is cheap: no TFX)."""

from __future__ import annotations

import os

PIPELINE_NAME = "sitn"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(REPO_ROOT, "feature_specs", "schema.pbtxt")
SPLITS = ("train", "eval", "test")
