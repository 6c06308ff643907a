"""`sitn_tf/features.py` and `feature_specs/schema.pbtxt` describe one contract.

The schema is what ImportSchemaGen/ExampleValidator enforce; the constants are
what Python code uses. These tests keep them equal, check that converter
output satisfies the schema (with TFDV, as ExampleValidator would), and that
no other Python file spells the distinctive feature names.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from sitn_tf import features as F
from sitn_tf.data.instances import Instance

REPO = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "feature_specs" / "schema.pbtxt"


@pytest.fixture(scope="module")
def schema() -> schema_pb2.Schema:
    return text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())


def _by_name(schema):
    return {feature.name: feature for feature in schema.feature}


def test_schema_names_are_exactly_the_constants(schema):
    names = [feature.name for feature in schema.feature]
    assert len(names) == len(set(names))
    assert set(names) == set(F.ALL_FEATURES)
    assert len(F.ALL_FEATURES) == len(set(F.ALL_FEATURES)) == 15
    assert set(F.REQUIRED_FEATURES) | set(F.OPTIONAL_FEATURES) == set(F.ALL_FEATURES)
    assert not set(F.REQUIRED_FEATURES) & set(F.OPTIONAL_FEATURES)


def test_types(schema):
    features = _by_name(schema)
    for name in F.SCALAR_BYTES_FEATURES + F.SEQUENCE_FEATURES + F.OPTIONAL_FEATURES:
        assert features[name].type == schema_pb2.BYTES, name
    for name in F.INT_FEATURES:
        assert features[name].type == schema_pb2.INT, name


def test_required_features_are_required_and_optional_ones_not(schema):
    features = _by_name(schema)
    for name in F.REQUIRED_FEATURES:
        assert features[name].presence.min_fraction == 1.0, name
        assert features[name].presence.min_count >= 1, name
    for name in F.OPTIONAL_FEATURES:
        # Data converted before these existed, and serving requests, omit them.
        assert not features[name].HasField("presence"), name
        # In both environments, like the candidate statistics.
        assert not features[name].not_in_environment, name
        assert not features[name].in_environment, name


def test_scalars_hold_exactly_one_value_and_lists_any(schema):
    features = _by_name(schema)
    for name in F.SCALAR_BYTES_FEATURES + F.INT_FEATURES:
        assert features[name].WhichOneof("shape_type") == "value_count", name
        assert (features[name].value_count.min, features[name].value_count.max) == (1, 1)
    for name in F.OPTIONAL_SCALAR_BYTES_FEATURES:
        assert features[name].WhichOneof("shape_type") == "value_count", name
        assert (features[name].value_count.min, features[name].value_count.max) == (0, 1)
    for name in F.SEQUENCE_FEATURES + F.OPTIONAL_SEQUENCE_FEATURES:
        count = features[name].value_count
        assert count.min == 0 and not count.HasField("max"), name


def test_item_attributes_are_transformed_but_not_ranker_inputs():
    assert F.ITEM_ATTRIBUTE_FEATURES == (F.ITEM_BRAND, F.ITEM_PRICE_BUCKET, F.ITEM_TAGS)
    assert not set(F.ITEM_ATTRIBUTE_FEATURES) & set(F.MODEL_INPUT_FEATURES)


def test_label_is_binary_and_absent_at_serving(schema):
    label = _by_name(schema)[F.LABEL]
    assert (label.int_domain.min, label.int_domain.max) == (0, 1)
    assert list(label.not_in_environment) == ["SERVING"]


def test_candidate_statistics_domains_and_environments(schema):
    features = _by_name(schema)
    domains = {
        F.CANDIDATE_PRIOR_CLICKS: (0, None),
        F.CANDIDATE_SEEN: (0, 1),
        F.CANDIDATE_AGE: (-1, None),  # -1 unknown, 0 not seen
    }
    for name, (low, high) in domains.items():
        domain = features[name].int_domain
        assert domain.min == low, name
        assert (domain.max if domain.HasField("max") else None) == high, name
        # In both environments, like the other inputs serving may omit.
        assert not features[name].not_in_environment, name
        assert not features[name].in_environment, name


def _instance(**overrides) -> Instance:
    fields = dict(
        split="train",
        user_id="A1",
        item_id="0001234567",
        item_category="",
        source_items=("0000000001", "B2"),
        source_categories=("Fantasy", ""),
        target_items=(),
        target_categories=(),
        label=1,
        event_timestamp=1_399_939_200,
        order=0,
        candidate_prior_clicks=3,
        candidate_seen=1,
        candidate_age=86_400,
        item_brand="Acme",
        item_price_bucket="3",
        item_tags=("cozy", "short"),
    )
    fields.update(overrides)
    return Instance(**fields)


def _anomalies(schema, serialized_examples):
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    batch = decoder.DecodeBatch(serialized_examples)
    stats = stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())
    anomalies = tfdv.validate_statistics(stats, schema, environment="TRAINING")
    return {path: info.short_description for path, info in anomalies.anomaly_info.items()}


def test_converter_examples_satisfy_the_schema(schema):
    examples = [
        _instance().to_example(),
        _instance(label=0, item_id="B9", source_items=(), source_categories=()).to_example(),
        _instance(candidate_prior_clicks=0, candidate_seen=0, candidate_age=0).to_example(),
        _instance(candidate_prior_clicks=0, candidate_seen=0, candidate_age=-1).to_example(),
        _instance(target_items=("B1",), target_categories=("Drama",)).to_example(),
        _instance(item_brand="", item_price_bucket="", item_tags=()).to_example(),
    ]
    assert _anomalies(schema, examples) == {}


def test_examples_without_item_attributes_satisfy_the_schema(schema):
    # Data converted before the attributes existed: the keys are missing.
    old = _instance().to_example()
    for name in F.OPTIONAL_FEATURES:
        old = _drop(old, name)
    assert _anomalies(schema, [old, old]) == {}
    assert _anomalies(schema, [old, _instance().to_example()]) == {}


@pytest.mark.parametrize("time_order", ["global", "per_user"])
def test_real_converter_output_satisfies_the_schema(schema, tmp_path, time_order):
    from sitn_tf.data import convert_interactions, tfrecord
    from sitn_tf.data.config import SPLITS, ConversionConfig
    from sitn_tf.data.reading import split_files

    rows = ["user_id\titem_id\tdomain\ttimestamp\n"]
    for u in range(8):
        rows += [f"U{u}\tb{(u + k) % 7}\tbooks\t{10 * k + u}\n" for k in range(5)]
        # Shared movies and one only this user clicks: seen and unseen candidates.
        rows += [f"U{u}\tm{(u + k) % 4}\tmovies\t{60 + 10 * k + u}\n" for k in range(3)]
        rows.append(f"U{u}\tonly-{u}\tmovies\t{95 + u}\n")
    path = tmp_path / "interactions.tsv"
    path.write_text("".join(rows))
    out = str(tmp_path / "out")
    config = ConversionConfig(
        source="books", target="movies", num_shards=1, num_negatives=2, time_order=time_order
    )
    convert_interactions(str(path), out, config)
    records = [
        record
        for split in SPLITS
        for file in split_files(out, split)
        for record in tfrecord.read_records(file)
    ]
    assert len(records) > 50
    assert _anomalies(schema, records) == {}


def _drop(serialized: bytes, name: str) -> bytes:
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    del example.features.feature[name]
    return example.SerializeToString()


def _add_value(serialized: bytes, name: str) -> bytes:
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    example.features.feature[name].bytes_list.value.append(b"extra")
    return example.SerializeToString()


@pytest.mark.parametrize(
    "corrupt, feature",
    [
        (lambda: _instance(label=2).to_example(), F.LABEL),
        (lambda: _drop(_instance().to_example(), F.SOURCE_ITEM_IDS), F.SOURCE_ITEM_IDS),
        (lambda: _drop(_instance().to_example(), F.EVENT_TIMESTAMP), F.EVENT_TIMESTAMP),
        (lambda: _add_value(_instance().to_example(), F.ITEM_ID), F.ITEM_ID),
        (lambda: _instance(candidate_seen=2).to_example(), F.CANDIDATE_SEEN),
        (lambda: _instance(candidate_prior_clicks=-1).to_example(), F.CANDIDATE_PRIOR_CLICKS),
        (lambda: _instance(candidate_age=-2).to_example(), F.CANDIDATE_AGE),
        (lambda: _drop(_instance().to_example(), F.CANDIDATE_AGE), F.CANDIDATE_AGE),
        (lambda: _add_value(_instance().to_example(), F.ITEM_BRAND), F.ITEM_BRAND),
        (
            lambda: _add_value(_instance().to_example(), F.ITEM_PRICE_BUCKET),
            F.ITEM_PRICE_BUCKET,
        ),
    ],
)
def test_schema_catches_broken_examples(schema, corrupt, feature):
    anomalies = _anomalies(schema, [_instance().to_example(), corrupt()])
    assert feature in anomalies, anomalies


# Names generic enough to be ordinary words elsewhere (user_id, item_id,
# label) are not scanned; these are unmistakably feature names.
DISTINCTIVE = (
    F.ITEM_CATEGORY,
    F.SOURCE_ITEM_IDS,
    F.SOURCE_CATEGORIES,
    F.TARGET_ITEM_IDS,
    F.TARGET_CATEGORIES,
    F.EVENT_TIMESTAMP,
    *F.CANDIDATE_STAT_FEATURES,
    *F.OPTIONAL_FEATURES,
)


def test_no_other_python_file_spells_feature_names():
    names = "|".join(map(re.escape, DISTINCTIVE))
    pattern = re.compile(rf"""["']({names})["']""")
    allowed = {REPO / "sitn_tf" / "features.py", pathlib.Path(__file__).resolve()}
    sources = [REPO / "sitn_tf", REPO / "pipelines", REPO / "tests"]
    offenders = []
    for path in sorted(p for root in sources for p in root.rglob("*.py")):
        if path.resolve() in allowed:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "import names from sitn_tf.features instead:\n" + "\n".join(offenders)
