"""`sitn-tf bench {train,serve,data,pipeline}`: measured speed and memory of every stage.

Benchmarks measure the code that ships, not copies of it:

* `train` feeds `SITNPretrainer`, `SITNRanker` and `DIN` through
  `sitn_tf.training.stage_datasets` (the Trainers' tf.data input) and
  `keras.Model.fit`, compiled like the Trainers compile them;
* `serve` loads a SavedModel written by `pipelines.serving.export_serving_model`
  (the Pusher's model, or one exported here the same way) and calls its
  `serving_default` signature with serialized `tf.Example`s;
* `data` times `sitn_tf.data.convert_interactions`, the converter behind
  `sitn-tf data interactions`;
* `pipeline` reports per-component wall times of a TFX run from ML Metadata
  (`pipelines.run_summary`).

Each command prints a table and writes one JSON file (machine, library
versions, config, every repeat and the medians); `docs/benchmarks.md` holds
the figures measured with them. Throughputs are medians over timed windows
after a warm-up, never single runs.
"""
