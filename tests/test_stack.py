"""The environment holds exactly the locked stack."""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize(
    ("module", "distribution"),
    [
        ("tfx", "tfx"),
        ("ml_metadata", "ml-metadata"),
        ("tensorflow", "tensorflow"),
        ("keras", "keras"),
        ("tensorflow_transform", "tensorflow-transform"),
        ("tensorflow_model_analysis", "tensorflow-model-analysis"),
        ("tensorflow_recommenders", "tensorflow-recommenders"),
        ("apache_beam", "apache-beam"),
    ],
)
def test_installed_versions_match_the_lock(module: str, distribution: str) -> None:
    importlib.import_module(module)
    assert metadata.version(distribution) == _locked()[distribution]


def test_the_lock_pins_the_designed_stack() -> None:
    pins = _locked()
    assert pins["tfx"].startswith("1.21.")
    assert pins["tensorflow"].startswith("2.21.")
    assert tuple(int(x) for x in pins["keras"].split(".")[:2]) >= (3, 15)
    assert pins["tensorflow-transform"].startswith("1.21.")
    assert pins["tensorflow-model-analysis"].startswith("0.52.")
    assert "tensorflow-io" not in pins


def test_keras_runs_on_the_tensorflow_backend() -> None:
    import keras

    assert keras.backend.backend() == "tensorflow"
