"""The SITN TFX pipeline end to end, driven the way users drive it.

One small synthetic dataset is converted once. The main run goes through the
TFX CLI with the local engine (`tfx pipeline create` + `tfx run create`);
other tests re-run it (caching), run it with the Beam engine, kill one mid-way
and resume it, and feed it broken data.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines import defaults
from sitn_tf import features as F

REPO = Path(defaults.REPO_ROOT)
NODES = {
    "ImportExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
    "pretrain",
    "finetune",
    "latest_blessed_model_resolver",
    "Evaluator",
    "Pusher",
    "retrieval",
}
MAX_SEQ_LEN = 12
TINY_RUN = {
    "transform": {"max_seq_len": MAX_SEQ_LEN},
    "model": {"embedding_dim": 16, "num_heads": 2, "granularities": [8, 16], "top_k": 2},
    "training": {"batch_size": 64, "pretrain_batch_size": 64, "num_epochs": 2},
    "run": {
        "pretrain_steps": 20,
        "train_steps": 80,
        "eval_steps": 4,
        "min_auc": 0.55,
        "beam_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    },
    "retrieval": {"enabled": True, "max_epochs": 3, "patience": 1, "top_k": 5},
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def small_data(workdir) -> Path:
    from sitn_tf.data import SyntheticConfig, prepare_synthetic_dataset

    out = workdir / "data"
    prepare_synthetic_dataset(
        str(out),
        SyntheticConfig(num_users=400, items_per_domain=200, num_interests=6, seed=3),
        beam_args=["--direct_running_mode=in_memory"],
    )
    return out


@pytest.fixture(scope="module")
def config_file(workdir) -> Path:
    path = workdir / "tiny.json"
    path.write_text(json.dumps(TINY_RUN))
    return path


def _env(workdir: Path, data: Path, config: Path, output: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SITN_DATA=str(data),
        SITN_CONFIG=str(config),
        SITN_OUTPUT=str(output),
        LOCAL_HOME=str(workdir / "tfx-home" / "local"),
        BEAM_HOME=str(workdir / "tfx-home" / "beam"),
        PYTHONUNBUFFERED="1",
    )
    return env


def _tfx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["tfx", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"tfx {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _summary(output: Path) -> dict:
    return json.loads(
        (output / "pipelines" / defaults.PIPELINE_NAME / "run_summary.json").read_text()
    )


@pytest.fixture(scope="module")
def local_run(workdir, small_data, config_file):
    output = workdir / "local"
    env = _env(workdir, small_data, config_file, output)
    created = _tfx(
        env,
        "pipeline",
        "create",
        "--engine",
        "local",
        "--pipeline_path",
        "pipelines/sitn_pipeline.py",
    )
    assert f'Pipeline "{defaults.PIPELINE_NAME}" created successfully' in created.stdout
    assert not (output / "pipelines").exists()  # `create` compiles; it does not run
    run = _tfx(env, "run", "create", "--engine", "local", "--pipeline_name", defaults.PIPELINE_NAME)
    return {
        "output": output,
        "env": env,
        "log": run.stdout + run.stderr,
        "summary": _summary(output),
    }


def test_every_component_executed_once(local_run):
    components = local_run["summary"]["components"]
    assert set(components) == NODES
    assert {info["state"] for info in components.values()} == {"COMPLETE"}
    order = local_run["summary"]["component_order"]
    assert sorted(order) == sorted(NODES)
    chain = ["ImportExampleGen", "Transform", "pretrain", "finetune", "Evaluator", "Pusher"]
    assert sorted(chain, key=order.index) == chain
    for node in NODES - {"latest_blessed_model_resolver"}:
        assert f"{node} done" in local_run["log"], f"no progress line for {node}"


def test_retrieval_trainer_reports_and_exports_a_retriever(local_run):
    """The optional "retrieval" Trainer: metrics with their baseline in the run summary,
    a `retrieve` SavedModel over the ranker's item ids, and the Beam MI in its assets."""
    from sitn_tf.retrieval import export
    from sitn_tf.retrieval.transformed import MUTUAL_INFORMATION_FILE

    summary = local_run["summary"]
    retrieval = summary["retrieval"]
    data = retrieval["data"]
    assert data["train"]["queries"] > 0 and data["eval"]["queries"] > 0
    assert data["train"]["unknown_targets"] == 0  # the vocabulary holds every train click
    for metrics in (retrieval["eval_metrics"], retrieval["baselines"]["popularity"]):
        assert 0.0 <= metrics["recall@10"] <= metrics["recall@50"] <= 1.0
        assert metrics["queries_head"] + metrics["queries_tail"] == data["eval"]["queries"]
    assert 1 <= retrieval["best_epoch"] <= retrieval["epochs_run"] <= 3
    assert "[sitn] retrieval eval Recall@10" in local_run["log"]

    from tfx.utils import path_utils

    model_dir = Path(path_utils.serving_model_path(summary["retrieval_model_uri"]))
    written = json.loads((model_dir / "assets.extra" / MUTUAL_INFORMATION_FILE).read_text())
    # The synthetic items carry category, brand, price bucket and tags.
    assert written["names"] == ["id", "category", "brand", "price_bucket", "tags"]
    retrieve = tf.saved_model.load(str(model_dir)).signatures[export.SIGNATURE]
    out = retrieve(
        history=tf.constant([[1, 2, 0]], tf.int64), history_length=tf.constant([2], tf.int64)
    )
    ids = out["item_ids"].numpy()[0]
    assert len(ids) == 5 and not {1, 2} & set(ids.tolist())  # the history is masked
    assert ((ids >= 1) & (ids < data["num_candidates"])).all()

    # Retrieve-then-rank from the two pipeline outputs, the corpus read from
    # the retriever's assets: raw ids in, the ranker's order out.
    from pipelines.retrieve_then_rank import RetrieveThenRank, read_corpus

    corpus = read_corpus(str(model_dir))
    assert len(corpus) == data["num_candidates"] and corpus[0] == ""
    path = RetrieveThenRank(str(model_dir), summary["pushed_model"])
    history = corpus[1:3]
    out = path.recommend(history, ["", ""], ["s-unknown"], [""], user_id="u")
    assert out.unknown_history_items == 0 and len(out.item_ids) == 5
    assert set(out.item_ids) <= set(corpus[3:])
    assert list(out.probabilities) == sorted(out.probabilities, reverse=True)


def test_pretrain_summary_has_cluster_health(local_run):
    (path,) = (local_run["output"] / "pipelines" / defaults.PIPELINE_NAME / "pretrain").glob(
        "model_run/*/training_summary.json"
    )
    summary = json.loads(path.read_text())
    assert -1.0 <= summary["cluster_health"]["instance_cosine"]["target"] <= 1.0
    health = summary["cluster_health"]["granularities"]
    assert health, "no granularity in the pretrain summary"
    for k, entry in health.items():
        assert 0.0 <= entry["target_usage_entropy"] <= 1.0
        assert 0 <= entry["target_dead_clusters"] <= int(k)
        assert entry["cross_cosine_margin"] == pytest.approx(
            entry["cross_cosine"] - entry["random_cross_cosine"]
        )


def test_evaluator_reports_overall_and_history_slices(local_run):
    metrics = local_run["summary"]["test_metrics"]
    known = [f"{F.CANDIDATE_KNOWN}={value}" for value in (F.KNOWN, F.UNKNOWN)]
    assert all(name in metrics for name in known), f"no known/unknown slices in {sorted(metrics)}"
    assert sum(metrics[name]["example_count"] for name in known) == metrics[""]["example_count"]
    buckets = [name for name in metrics if name.startswith(f"{F.TARGET_HISTORY_BUCKET}=")]
    assert buckets, f"no history-length slices in {sorted(metrics)}"
    for name in ["", *buckets]:
        for metric in ("auc", "binary_crossentropy", "example_count", "mean_label", "calibration"):
            assert metric in metrics[name], f"{metric} missing for slice {name!r}"
    overall = metrics[""]
    assert overall["example_count"] == sum(metrics[b]["example_count"] for b in buckets)
    assert 0.2 == pytest.approx(overall["mean_label"])  # 1 positive : 4 negatives
    assert overall["auc"] > TINY_RUN["run"]["min_auc"]
    assert local_run["summary"]["blessed"] is True
    assert "[sitn] test AUC" in local_run["log"]


def _test_examples(data: Path, n: int) -> list[bytes]:
    files = sorted(glob.glob(str(data / "test" / "*")))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(n)
    return [r.numpy() for r in records]


def _example(**features) -> bytes:
    def feature(v):
        if isinstance(v, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
        values = [v] if isinstance(v, str) else v
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.encode() for x in values]))

    return tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    ).SerializeToString()


def test_pushed_savedmodel_matches_the_trainer_model(local_run, small_data):
    import keras
    import tensorflow_transform as tft

    import sitn_tf.models  # noqa: F401  (registers the classes for keras.saving)

    pushed = local_run["summary"]["pushed_model"]
    assert pushed.startswith(str(local_run["output"] / "serving_model" / defaults.PIPELINE_NAME))
    real = _test_examples(small_data, 60)
    known = tf.train.Example.FromString(real[0]).features.feature
    src = [x.decode() for x in known[F.SOURCE_ITEM_IDS].bytes_list.value]
    edge_cases = [
        # Unknown user, candidate and history items, unknown category.
        _example(
            user_id="nobody",
            item_id="no-such-item",
            item_category="no-such-cat",
            source_item_ids=["x1", "x2"],
            source_categories=["c?", "c?"],
            target_item_ids=["y1"],
            target_categories=[""],
        ),
        # Empty target history (a cold-start user in the target domain).
        _example(
            user_id="u",
            item_id="no-such-item",
            item_category="",
            source_item_ids=src,
            source_categories=[""] * len(src),
            target_item_ids=[],
            target_categories=[],
        ),
        # Longer histories than max_seq_len; no user_id or item_category at all.
        _example(
            item_id="z",
            source_item_ids=(src * 10)[: 5 * MAX_SEQ_LEN],
            source_categories=[""] * (5 * MAX_SEQ_LEN),
            target_item_ids=["y"] * (3 * MAX_SEQ_LEN),
            target_categories=[""] * (3 * MAX_SEQ_LEN),
        ),
    ]
    examples = tf.constant(real + edge_cases)

    served = tf.saved_model.load(pushed)
    probability = served.signatures["serving_default"](examples=examples)["probability"].numpy()
    assert probability.shape == (len(real) + len(edge_cases),)
    assert np.all(np.isfinite(probability))
    assert np.all((probability > 0) & (probability < 1))

    # The same examples through the Trainer's Keras model on transformed features.
    root = local_run["output"] / "pipelines" / defaults.PIPELINE_NAME
    (keras_file,) = glob.glob(str(root / "finetune" / "model_run" / "*" / "model.keras"))
    model = keras.saving.load_model(keras_file)
    (transform_dir,) = glob.glob(str(root / "Transform" / "transform_graph" / "*"))
    tft_output = tft.TFTransformOutput(transform_dir)
    from pipelines import serving

    spec = serving.serving_feature_spec(tft_output)
    transformed = tft_output.transform_features_layer()(tf.io.parse_example(examples, spec))
    expected = model({k: transformed[k] for k in F.MODEL_INPUT_FEATURES}, training=False)
    np.testing.assert_allclose(probability, np.reshape(expected, [-1]), atol=1e-5, rtol=0)

    # serving_raw takes no statistics: on the first real example it equals
    # serving_default on that example with its statistics removed (unknown).
    stripped = tf.train.Example.FromString(real[0])
    for name in F.CANDIDATE_STAT_FEATURES:
        del stripped.features.feature[name]
    unknown = served.signatures["serving_default"](
        examples=tf.constant([stripped.SerializeToString()])
    )["probability"].numpy()
    ex = stripped.features.feature

    def strings(name):
        return [x.decode() for x in ex[name].bytes_list.value]

    raw = served.signatures[serving.SERVING_RAW](
        user_id=tf.constant(strings(F.USER_ID)),
        item_id=tf.constant(strings(F.ITEM_ID)),
        item_category=tf.constant(strings(F.ITEM_CATEGORY)),
        source_item_ids=tf.constant([strings(F.SOURCE_ITEM_IDS) or [""]]),
        source_categories=tf.constant([strings(F.SOURCE_CATEGORIES) or [""]]),
        target_item_ids=tf.constant([strings(F.TARGET_ITEM_IDS) or [""]]),
        target_categories=tf.constant([strings(F.TARGET_CATEGORIES) or [""]]),
    )["probability"].numpy()
    np.testing.assert_allclose(raw, unknown, atol=1e-6)


def test_rerun_with_unchanged_inputs_uses_the_cache(local_run):
    _tfx(
        local_run["env"],
        "run",
        "create",
        "--engine",
        "local",
        "--pipeline_name",
        defaults.PIPELINE_NAME,
    )
    components = _summary(local_run["output"])["components"]
    cached = {n for n, info in components.items() if info["state"] == "CACHED"}
    # Everything up to and including the Trainers is reused. The Evaluator runs
    # again because its baseline changed: the first run's model is now blessed.
    assert {"ImportExampleGen", "StatisticsGen", "Transform", "pretrain", "finetune"} <= cached


def test_beam_engine(workdir, small_data, config_file):
    output = workdir / "beam"
    env = _env(workdir, small_data, config_file, output)
    _tfx(
        env, "pipeline", "create", "--engine", "beam", "--pipeline_path", "pipelines/beam_runner.py"
    )
    _tfx(env, "run", "create", "--engine", "beam", "--pipeline_name", defaults.PIPELINE_NAME)
    summary = _summary(output)
    assert set(summary["components"]) == NODES
    assert summary["runner"] == "beam"
    assert summary["pushed_model"]


def test_interrupted_run_resumes_from_finished_components(workdir, small_data):
    """Killed inside the finetune Trainer: the re-run reuses every finished component
    and the Trainer continues from its last finished epoch, not from step 0."""
    output = workdir / "interrupted"
    # Four short epochs, so that the kill lands between two of them.
    config = workdir / "interrupted.json"
    tiny = json.loads(json.dumps(TINY_RUN))
    tiny["training"]["num_epochs"] = 4
    tiny["run"]["train_steps"] = 160
    config.write_text(json.dumps(tiny))
    env = _env(workdir, small_data, config, output)
    command = [sys.executable, "pipelines/sitn_pipeline.py"]
    log = open(workdir / "interrupted.log", "w+")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    backups = output / "pipelines" / defaults.PIPELINE_NAME / "finetune" / "resume_backup"
    deadline = time.monotonic() + 900
    while not list(backups.glob("*/state-1.json")) and process.poll() is None:
        assert time.monotonic() < deadline, "the finetune Trainer never finished an epoch"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.seek(0)
    assert list(backups.glob("*/state-1.json")), log.read()[-4000:]
    assert not (output / "serving_model").exists()

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    components = _summary(output)["components"]
    assert components["Transform"]["state"] == "CACHED"
    assert components["pretrain"]["state"] == "CACHED"
    assert components["finetune"]["state"] == "COMPLETE"
    assert components["Pusher"]["state"] == "COMPLETE"
    runs = sorted(
        (output / "pipelines" / defaults.PIPELINE_NAME / "finetune" / "model_run").glob(
            "*/training_summary.json"
        ),
        key=lambda p: int(p.parent.name),
    )
    summary = json.loads(runs[-1].read_text())  # the re-run's execution
    assert summary["initial_epoch"] >= 1  # resumed, not from epoch 0
    assert summary["steps_per_epoch"] == 40
    # Early stopping may end the run before epoch 4; whatever ran is all in the
    # history, the killed run's epochs included.
    assert len(summary["history"]["val_auc"]) == summary["epochs_run"] >= summary["initial_epoch"]
    assert not list(backups.glob("*/state-*.json"))  # cleaned up after the finished run


def test_missing_feature_stops_at_example_validator(workdir, small_data, config_file):
    from sitn_tf.data import tfrecord

    broken = workdir / "broken-data"
    for split in defaults.SPLITS:
        (broken / split).mkdir(parents=True)
        records = []
        for path in sorted(glob.glob(str(small_data / split / "*"))):
            for record in tfrecord.read_records(path):
                example = tf.train.Example.FromString(record)
                if split == "eval":
                    del example.features.feature[F.LABEL]
                records.append(example.SerializeToString())
        tfrecord.write_shard(str(broken / split / "part-00000-of-00001.tfrecord.gz"), records)
    output = workdir / "broken"
    env = _env(workdir, broken, config_file, output)
    result = subprocess.run(
        [sys.executable, "pipelines/sitn_pipeline.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ExampleValidator found anomalies" in log
    assert f"split 'eval', feature '{F.LABEL}'" in log
    assert "Transform ..." not in log  # nothing after the gate ran
