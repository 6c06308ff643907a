"""Retrieve-then-rank end to end: a two-tower `retrieve` export and a pushed ranker."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import serving
from pipelines.retrieve_then_rank import CORPUS_FILE, RetrieveThenRank, read_corpus
from pipelines.serving_test import SOURCE, tiny_ranker, transform_output  # noqa: F401 - fixture
from sitn_tf import features as F
from sitn_tf.models import SITNRanker
from sitn_tf.retrieval import export as retrieval_export
from sitn_tf.retrieval.two_tower import TwoTowerRetriever

# The retriever's corpus as raw ids: m5 is unknown to the ranker's vocabulary.
CORPUS = ["", "m1", "m2", "m3", "m4", "m5"]
CATEGORIES = {"m1": "drama", "m2": "comedy", "m3": "drama", "m4": "comedy"}
SOURCE_CATEGORIES = ["c1", "c2", "c1", "c3", "c2"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, transform_output):  # noqa: F811 - the imported fixture
    root = tmp_path_factory.mktemp("retrieve_then_rank")
    keras.utils.set_random_seed(0)
    retriever_dir = retrieval_export.export_retriever(
        TwoTowerRetriever(len(CORPUS), embedding_dim=4), str(root / "retriever"), k=3
    )
    ranker_dir = str(root / "ranker")
    ranker = tiny_ranker(SITNRanker, transform_output)
    serving.export_serving_model(ranker, transform_output, ranker_dir)
    return retriever_dir, ranker_dir


def test_top_k_of_the_retriever_ranked_by_the_ranker(models):
    retriever_dir, ranker_dir = models
    path = RetrieveThenRank(retriever_dir, ranker_dir, CORPUS, CATEGORIES)
    target, target_categories = ["m1", "x9", "m2"], ["drama", "new", "comedy"]
    out = path.recommend(target, target_categories, SOURCE, SOURCE_CATEGORIES, user_id="u1")

    # The retriever saw m1 and m2 (x9 is not in its corpus, counted) and
    # returns every other item of its 5, best first.
    assert out.unknown_history_items == 1
    retrieved = tf.saved_model.load(retriever_dir).signatures[retrieval_export.SIGNATURE](
        history=tf.constant([[1, 2]], tf.int64), history_length=tf.constant([2], tf.int64)
    )
    by_retriever = [CORPUS[j] for j in retrieved["item_ids"].numpy()[0]]
    assert sorted(by_retriever) == ["m3", "m4", "m5"] == sorted(out.item_ids)
    scores = dict(zip(by_retriever, retrieved["scores"].numpy()[0], strict=True))
    np.testing.assert_allclose(out.retrieval_scores, [scores[i] for i in out.item_ids])

    # The ranker's probabilities, each as score_candidates gives it for the
    # whole history, in descending order.
    direct = (
        tf.saved_model.load(ranker_dir)
        .signatures[serving.SCORE_CANDIDATES](
            user_id=tf.constant(["u1"]),
            item_id=tf.constant(out.item_ids),
            item_category=tf.constant([CATEGORIES.get(i, "") for i in out.item_ids]),
            **{
                F.SOURCE_ITEM_IDS: tf.constant([SOURCE]),
                F.SOURCE_CATEGORIES: tf.constant([SOURCE_CATEGORIES]),
                F.TARGET_ITEM_IDS: tf.constant([target]),
                F.TARGET_CATEGORIES: tf.constant([target_categories]),
            },
            candidate_prior_clicks=tf.constant([-1], tf.int64),
            candidate_age=tf.constant([-1], tf.int64),
        )[serving.PROBABILITY]
        .numpy()
    )
    np.testing.assert_allclose(out.probabilities, direct, atol=1e-6)
    assert np.all(np.diff(out.probabilities) <= 0)


def test_a_user_without_known_history_still_gets_candidates(models):
    path = RetrieveThenRank(*models, CORPUS, CATEGORIES)
    out = path.recommend([], [], SOURCE, SOURCE_CATEGORIES)
    assert len(out.item_ids) == 3 and set(out.item_ids) <= set(CORPUS[1:])
    assert out.unknown_history_items == 0


def test_the_corpus_comes_from_the_retrievers_assets(models, tmp_path):
    import shutil

    retriever_dir, ranker_dir = models
    with pytest.raises(FileNotFoundError, match="corpus.txt: no corpus file"):
        RetrieveThenRank(retriever_dir, ranker_dir)
    copy = tmp_path / "retriever"
    shutil.copytree(retriever_dir, copy)
    (copy / "assets.extra").mkdir(exist_ok=True)
    (copy / "assets.extra" / CORPUS_FILE).write_text("\n".join(CORPUS) + "\n")
    assert read_corpus(str(copy)) == CORPUS
    out = RetrieveThenRank(str(copy), ranker_dir, categories=CATEGORIES).recommend(
        ["m1"], ["drama"], SOURCE, SOURCE_CATEGORIES
    )
    expected = RetrieveThenRank(retriever_dir, ranker_dir, CORPUS, CATEGORIES).recommend(
        ["m1"], ["drama"], SOURCE, SOURCE_CATEGORIES
    )
    assert out.item_ids == expected.item_ids


def test_bad_arguments_are_named(models):
    retriever_dir, ranker_dir = models
    with pytest.raises(ValueError, match="distinct"):
        RetrieveThenRank(retriever_dir, ranker_dir, ["", "m1", "m1"])
    with pytest.raises(ValueError, match="score_candidates"):
        RetrieveThenRank(retriever_dir, retriever_dir, CORPUS)
    path = RetrieveThenRank(retriever_dir, ranker_dir, CORPUS)
    with pytest.raises(ValueError, match="target_item_ids and target_categories"):
        path.recommend(["m1"], [])
