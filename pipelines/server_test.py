"""`sitn-tf serve` against the real server process on 127.0.0.1.

A tiny SavedModel is built once per module. It has the shapes of the pushed
model's signatures (`serving_default` on serialized `tf.Example`s,
`serving_raw` on string tensors), a multi-candidate signature (one user's
history, N candidates -> N scores), one with numeric inputs for dtype and shape
errors, and a slow one for draining on SIGTERM. The server runs as
`python -m sitn_tools serve` in a subprocess, as users run it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
import tensorflow as tf

MODEL = "tiny"
MAX_BATCH = 8
BUCKETS = 32
STARTUP_SECONDS = 120
# `busy` runs this many loop steps: about 2.5 s on 2 cores, long enough to be in flight.
BUSY_ITERATIONS = 250_000


class TinyServing(tf.Module):
    """A small stand-in for `pipelines.serving.ServingModule`."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = tf.Variable(weight)
        self.table = tf.Variable(tf.random.stateless_normal([BUCKETS], seed=[1, 2]))

    def _score(self, item_id, history):
        item = tf.gather(self.table, tf.strings.to_hash_bucket_fast(item_id, BUCKETS))
        past = tf.gather(self.table, tf.strings.to_hash_bucket_fast(history, BUCKETS))
        mask = tf.cast(tf.not_equal(history, ""), tf.float32)
        return tf.sigmoid(self.weight * item + tf.reduce_sum(past * mask, axis=-1))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        spec = {
            "item_id": tf.io.FixedLenFeature([], tf.string),
            "history": tf.io.VarLenFeature(tf.string),
        }
        parsed = tf.io.parse_example(examples, spec)
        history = tf.sparse.to_dense(parsed["history"], default_value="")
        return {"probability": self._score(parsed["item_id"], history)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="item_id"),
            tf.TensorSpec([None, None], tf.string, name="history"),
        ]
    )
    def serve_raw(self, item_id, history):
        return {"probability": self._score(item_id, history)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="history"),
            tf.TensorSpec([None], tf.string, name="candidates"),
        ]
    )
    def score_candidates(self, history, candidates):
        histories = tf.repeat(history[tf.newaxis], tf.shape(candidates)[0], axis=0)
        return {"scores": self._score(candidates, histories)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="x"),
            tf.TensorSpec([None], tf.int64, name="k"),
        ]
    )
    def numeric(self, x, k):
        return {
            "y": tf.reduce_sum(x, axis=1) * tf.cast(k, tf.float32) * self.weight,
            "label": tf.strings.as_string(k),
        }

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64, name="n")])
    def busy(self, n):
        count = tf.while_loop(lambda i: i < n, lambda i: i + 1, [tf.constant(0, tf.int64)])
        return {"count": count[0] if isinstance(count, list | tuple) else count}


def export(weight: float, export_dir: str) -> None:
    module = TinyServing(weight)
    signatures = {
        "serving_default": module.serve_examples.get_concrete_function(),
        "serving_raw": module.serve_raw.get_concrete_function(),
        "score_candidates": module.score_candidates.get_concrete_function(),
        "numeric": module.numeric.get_concrete_function(),
        "busy": module.busy.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)


def push(weight: float, base: str, version: int) -> str:
    """Writes a version beside the base folder, then renames it in (as a push lands)."""
    staging = os.path.join(os.path.dirname(base), f"staging-{version}")
    export(weight, staging)
    final = os.path.join(base, str(version))
    os.rename(staging, final)
    return final


def example(item_id: str, history: list[str]) -> bytes:
    feature = {
        "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id.encode()])),
        "history": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[h.encode() for h in history])
        ),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`sitn-tf serve` in a subprocess on 127.0.0.1."""

    def __init__(self, base: str, log_path: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/models/{MODEL}"
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sitn_tools",
                "serve",
                "--model_base_path",
                base,
                "--model_name",
                MODEL,
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--max_batch_size",
                str(MAX_BATCH),
                "--file_system_poll_wait_seconds",
                "0.2",
                "--grace_seconds",
                "20",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited at start:\n{self.output()}"
            try:
                if requests.get(self.url, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server not up in {STARTUP_SECONDS} s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-5000:]

    def post(self, body, suffix: str = ":predict", **kwargs) -> requests.Response:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return requests.post(self.url + suffix, data=data, timeout=30, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("serve")
    base = str(root / "models" / MODEL)
    os.makedirs(base)
    push(0.5, base, 1)
    return base


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    srv = Server(base, str(tmp_path_factory.mktemp("log") / "server.log"))
    yield srv
    srv.stop()


def signature(base: str, version: int, name: str):
    return tf.saved_model.load(os.path.join(base, str(version))).signatures[name]


ITEMS = [("i1", ["a", "b", ""]), ("i2", ["c", "", ""]), ("i3", ["d", "e", "f"])]


def test_status_and_metadata(server):
    status = requests.get(server.url, timeout=10).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert status["model_version_status"][0]["status"]["error_code"] == "OK"
    meta = requests.get(server.url + "/metadata", timeout=10).json()
    version = status["model_version_status"][0]["version"]
    assert meta["model_spec"] == {"name": MODEL, "signature_name": "", "version": version}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "serving_raw", "score_candidates"} <= set(defs)
    examples = defs["serving_default"]["inputs"]["examples"]
    assert examples["dtype"] == "DT_STRING"
    assert examples["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert requests.get(server.url + "/versions/" + version, timeout=10).status_code == 200


def test_predictions_match_the_signature_in_process(server, base):
    version = int(requests.get(server.url, timeout=10).json()["model_version_status"][0]["version"])
    serialized = [example(item, history) for item, history in ITEMS]
    expected = signature(base, version, "serving_default")(examples=tf.constant(serialized))
    expected = expected["probability"].numpy()

    rows = server.post({"instances": [b64(s) for s in serialized]})
    assert rows.status_code == 200, rows.text
    np.testing.assert_allclose(rows.json()["predictions"], expected, rtol=0, atol=1e-6)

    columns = server.post({"inputs": {"examples": [b64(s) for s in serialized]}})
    np.testing.assert_allclose(columns.json()["outputs"], expected, rtol=0, atol=1e-6)

    # curl -d sends a form content type; TF Serving reads the body as JSON anyway.
    form = server.post(
        {"signature_name": "serving_default", "inputs": [b64(s) for s in serialized]},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    np.testing.assert_allclose(form.json()["outputs"], expected, rtol=0, atol=1e-6)

    versioned = server.post(
        {"instances": [b64(s) for s in serialized]}, f"/versions/{version}:predict"
    )
    np.testing.assert_allclose(versioned.json()["predictions"], expected, rtol=0, atol=1e-6)

    raw = server.post(
        {
            "signature_name": "serving_raw",
            "instances": [{"item_id": item, "history": history} for item, history in ITEMS],
        }
    )
    assert raw.status_code == 200, raw.text
    np.testing.assert_allclose(raw.json()["predictions"], expected, rtol=0, atol=1e-6)


def test_any_signature_is_served_by_name(server, base):
    history, candidates = ["a", "b"], ["i1", "i2", "i3", "i4"]
    reply = server.post(
        {
            "signature_name": "score_candidates",
            "inputs": {"history": history, "candidates": candidates},
        }
    )
    assert reply.status_code == 200, reply.text
    expected = signature(base, 1, "score_candidates")(
        history=tf.constant(history), candidates=tf.constant(candidates)
    )["scores"].numpy()
    np.testing.assert_allclose(reply.json()["outputs"], expected, rtol=0, atol=1e-6)

    numeric = server.post(
        {
            "signature_name": "numeric",
            "instances": [{"x": [1, 2, 3], "k": 2}, {"x": [0, 0, 1], "k": 5}],
        }
    )
    assert numeric.status_code == 200, numeric.text
    predictions = numeric.json()["predictions"]
    assert [p["label"] for p in predictions] == ["2", "5"]
    np.testing.assert_allclose([p["y"] for p in predictions], [6.0, 2.5], atol=1e-6)


BAD_REQUESTS = [
    ("malformed JSON", b'{"instances": [', 400, "malformed JSON"),
    ("not an object", b"[1, 2]", 400, "JSON object"),
    ("neither instances nor inputs", {"signature_name": "serving_default"}, 400, "neither"),
    ("both instances and inputs", {"instances": [], "inputs": []}, 400, "both"),
    ("empty instances", {"instances": []}, 400, "empty batch"),
    ("empty inputs", {"inputs": {"examples": []}}, 400, "empty batch"),
    ("unknown signature", {"signature_name": "nope", "instances": ["x"]}, 404, '"nope"'),
    (
        "wrong dtype",
        {"signature_name": "numeric", "inputs": {"x": [["a", "b", "c"]], "k": [1]}},
        400,
        "'x'",
    ),
    (
        "float for an integer input",
        {"signature_name": "numeric", "inputs": {"x": [[1, 2, 3]], "k": [1.5]}},
        400,
        "int64",
    ),
    (
        "wrong shape",
        {"signature_name": "numeric", "inputs": {"x": [[1, 2]], "k": [1]}},
        400,
        "dimension 1 must be 3",
    ),
    (
        "wrong rank",
        {"signature_name": "serving_raw", "inputs": {"item_id": ["i"], "history": ["a"]}},
        400,
        "'history'",
    ),
    (
        "ragged rows",
        {
            "signature_name": "serving_raw",
            "inputs": {"item_id": ["i", "j"], "history": [["a"], ["b", "c"]]},
        },
        400,
        "rectangular",
    ),
    (
        "missing input",
        {"signature_name": "serving_raw", "inputs": {"item_id": ["i"]}},
        400,
        "missing input(s) ['history']",
    ),
    (
        "garbage bytes as a tf.Example",
        {"instances": [b64(b"\xff\x00garbage")]},
        400,
        "tf.Example",
    ),
    ("invalid base64", {"instances": [{"b64": "***"}]}, 400, "base64"),
    ("number where a string belongs", {"instances": [17]}, 400, "expected a string"),
    (
        "batch over the maximum",
        {"instances": [b64(example("i", []))] * (MAX_BATCH + 1)},
        400,
        "maximum",
    ),
]


@pytest.mark.parametrize(
    "body,status,words", [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS]
)
def test_bad_request_is_answered_and_the_server_keeps_serving(server, body, status, words):
    reply = server.post(body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert words in error, error
    assert server.process.poll() is None
    good = server.post({"instances": [b64(example("i1", ["a"]))]})
    assert good.status_code == 200, good.text


def test_unknown_model_and_version_are_404(server):
    other = server.url.replace(f"/{MODEL}", "/other")
    assert requests.get(other, timeout=10).status_code == 404
    missing = requests.post(other + ":predict", data="{}", timeout=10)
    assert missing.status_code == 404 and "other" in missing.json()["error"]
    version = server.post({"instances": ["x"]}, "/versions/999:predict")
    assert version.status_code == 404 and "999" in version.json()["error"]
    assert requests.get(server.url + "/versions/999", timeout=10).status_code == 404


def test_a_version_pushed_later_is_served_without_restart(server, base):
    before = server.post({"signature_name": "numeric", "inputs": {"x": [[1, 1, 1]], "k": [1]}})
    assert before.json()["outputs"]["y"] == [1.5]
    push(2.0, base, 2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(server.url, timeout=10).json()["model_version_status"][0]
        if status["version"] == "2":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"version 2 not picked up:\n{server.output()}")
    after = server.post({"signature_name": "numeric", "inputs": {"x": [[1, 1, 1]], "k": [1]}})
    assert after.json()["outputs"]["y"] == [6.0]
    serialized = [example(item, history) for item, history in ITEMS]
    expected = signature(base, 2, "serving_default")(examples=tf.constant(serialized))
    reply = server.post({"instances": [b64(s) for s in serialized]})
    np.testing.assert_allclose(
        reply.json()["predictions"], expected["probability"].numpy(), rtol=0, atol=1e-6
    )


def test_sigterm_drains_requests_in_flight_then_exits(base, tmp_path):
    srv = Server(base, str(tmp_path / "server.log"))
    try:
        n = BUSY_ITERATIONS
        replies: list[tuple[float, requests.Response]] = []

        def call() -> None:
            reply = srv.post({"signature_name": "busy", "inputs": n})
            replies.append((time.monotonic(), reply))

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        srv.process.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        assert replies, srv.output()
        answered, reply = replies[0]
        assert reply.status_code == 200, srv.output()
        assert reply.json() == {"outputs": n}
        # The request was still running when the signal came, and was answered.
        assert answered > signalled
        assert srv.process.wait(timeout=30) == 0, srv.output()
        with pytest.raises(requests.ConnectionError):
            requests.get(srv.url, timeout=5)
    finally:
        srv.stop()


def test_a_retriever_is_served_with_its_retrieve_signature(tmp_path):
    """The `retrieve` export of `sitn_tf.retrieval` (the first stage of retrieve-then-rank)."""
    import keras

    from sitn_tf.retrieval import export as retrieval_export
    from sitn_tf.retrieval.two_tower import TwoTowerRetriever

    keras.utils.set_random_seed(0)
    model = TwoTowerRetriever(10, num_candidates=7, embedding_dim=4)
    base = tmp_path / "models" / MODEL
    os.makedirs(base)
    retrieval_export.export_retriever(model, str(base / "1"), k=3)
    history, lengths = [[1, 2, 0], [4, 5, 6]], [2, 1]
    expected = signature(str(base), 1, retrieval_export.SIGNATURE)(
        history=tf.constant(history, tf.int64), history_length=tf.constant(lengths, tf.int64)
    )
    srv = Server(str(base), str(tmp_path / "server.log"))
    try:
        reply = srv.post(
            {
                "signature_name": retrieval_export.SIGNATURE,
                "inputs": {"history": history, "history_length": lengths},
            }
        )
        assert reply.status_code == 200, reply.text
        out = reply.json()["outputs"]
        np.testing.assert_array_equal(out["item_ids"], expected["item_ids"].numpy())
        np.testing.assert_allclose(out["scores"], expected["scores"].numpy(), rtol=1e-6)
        # Padding and the first row's history are never retrieved; row 1 reads only item 4.
        assert not {0, 1, 2} & set(out["item_ids"][0])
        assert not {0, 4} & set(out["item_ids"][1])
        bad = srv.post(
            {"signature_name": retrieval_export.SIGNATURE, "inputs": {"history": history}}
        )
        assert bad.status_code == 400 and "history_length" in bad.text
    finally:
        srv.stop()
