"""`run_fn` of the optional "retrieval" Trainer: a two-tower retriever, a thin adapter.

The training is `sitn_tf.retrieval.transformed.fit_retriever` (the Transform's
vocabularies, so returned ids are the ranker's `item_id` ids; early stopping
on eval Recall@50). Outputs:

* Model artifact: the SavedModel with the `retrieve` signature
  (`sitn_tf.retrieval.export`), and in its `assets.extra/` the item
  features' mutual information that chose CFM's groups
  (`item_feature_mutual_information.json`, written by a Beam transform),
  `retrieval_config.json`, and `corpus.txt`: line `j` the raw item id of
  retriever id `j` (line 0 empty, padding), what
  `pipelines.retrieve_then_rank` maps ids back with;
* ModelRun artifact: `retrieval_summary.json` (data counts, eval Recall@10/50
  overall / head / tail beside the popularity baseline, the curve, the best
  epoch), which `pipelines/run_summary.py` reports, and `model.keras`.
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipelines.retrieve_then_rank import CORPUS_FILE
from sitn_tf import files, preprocessing
from sitn_tf.config import Config
from sitn_tf.retrieval import export
from sitn_tf.retrieval.transformed import fit_retriever

SUMMARY_FILE = "retrieval_summary.json"
KERAS_MODEL_FILE = "model.keras"


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = Config.from_custom_config(fn_args.custom_config)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    out = fn_args.serving_model_dir
    # Written before the SavedModel; `tf.saved_model.save` keeps a folder's
    # other contents.
    assets = os.path.join(out, "assets.extra")
    result = fit_retriever(
        config, transform_output, fn_args.train_files, fn_args.eval_files, assets_dir=assets
    )
    export.export_retriever(result.model, out, k=config.retrieval.top_k)
    files.write_json(os.path.join(assets, "retrieval_config.json"), result.model.get_config())
    # The corpus is the target-item vocabulary: id j is its line j - 1.
    vocabulary = transform_output.vocabulary_by_name(preprocessing.TARGET_ITEM_VOCAB)
    corpus = ["", *(v.decode() if isinstance(v, bytes) else v for v in vocabulary)]
    if len(corpus) != result.model.num_candidates:
        raise ValueError(
            f"the target-item vocabulary gives {len(corpus)} ids, the retriever "
            f"{result.model.num_candidates}"
        )
    with tf.io.gfile.GFile(os.path.join(assets, CORPUS_FILE), "w") as handle:
        handle.write("\n".join(corpus) + "\n")
    run_dir = fn_args.model_run_dir
    result.model.save(os.path.join(run_dir, KERAS_MODEL_FILE))
    files.write_json(os.path.join(run_dir, SUMMARY_FILE), result.summary)
