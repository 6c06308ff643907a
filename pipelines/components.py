"""Custom TFX components of the SITN pipeline."""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

ANOMALIES_FILE = "SchemaDiff.pb"


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """One line per anomaly: split, feature and the validator's description."""
    found = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        proto = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
        for feature, info in sorted(proto.anomaly_info.items()):
            reasons = "; ".join(r.description for r in info.reason) or info.description
            found.append(
                f"split '{split}', feature '{feature}': {info.short_description}: {reasons}"
            )
        if proto.HasField("dataset_anomaly_info"):
            info = proto.dataset_anomaly_info
            reasons = "; ".join(r.description for r in info.reason) or info.description
            found.append(f"split '{split}', dataset: {info.short_description}: {reasons}")
    return found


@tfx.dsl.components.component
def AnomaliesGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
) -> None:
    """Fails the run when ExampleValidator found any anomaly, naming each one.

    ExampleValidator only records anomalies; Transform runs after this gate,
    so bad data stops the pipeline before any preprocessing or training.
    """
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    found = describe_anomalies(anomalies.uri, splits)
    if found:
        raise ValueError(
            "ExampleValidator found anomalies against feature_specs/schema.pbtxt:\n  "
            + "\n  ".join(found)
        )
