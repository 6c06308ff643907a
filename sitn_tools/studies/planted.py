"""A tiny cross-domain dataset with a planted interest signal.

For model tests and quick studies only (the pipeline has its own synthetic
generator). Every user has one latent topic; both domains' items are split
into the same topics, so a user's source history reveals which target items
they like. Histories are already integer ids (0 = padding) keyed by
`sitn_tf.features` names, i.e. what the models consume.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sitn_tf import features


@dataclasses.dataclass(frozen=True)
class PlantedData:
    """Arrays keyed by feature names, plus the vocabulary sizes they need."""

    pairs: dict[str, np.ndarray]  # (source, target) history pairs of non-test users
    train: tuple[dict[str, np.ndarray], np.ndarray]  # (features, labels)
    test: tuple[dict[str, np.ndarray], np.ndarray]
    test_cold: np.ndarray  # (num_test_examples,) bool: empty target history
    test_pairs: dict[str, np.ndarray]  # history pairs of the test users
    user_topics: np.ndarray  # (num_users,) the planted topic of each user
    num_source_items: int
    num_target_items: int
    num_categories: int


def make_planted_data(
    num_users: int = 1000,
    num_topics: int = 8,
    items_per_topic: int = 12,
    max_seq_len: int = 8,
    purity: float = 0.8,
    cold_fraction: float = 0.3,
    labeled_fraction: float = 0.5,
    test_fraction: float = 0.5,
    negatives_per_positive: int = 1,
    seed: int = 0,
) -> PlantedData:
    """Generates the dataset.

    Item ids of topic `t` in either domain are
    `1 + t * items_per_topic ... (t + 1) * items_per_topic`; their category
    id is `t + 1`. A history item is on-topic with probability `purity`,
    otherwise uniform. `cold_fraction` of the users have an empty target
    history. The first `labeled_fraction` of the users give the CTR training
    set and the last `test_fraction` the test set; each user gets one
    positive candidate (an on-topic target item) and `negatives_per_positive`
    negatives (off-topic). `pairs` holds every user outside the test set, so
    with `labeled_fraction + test_fraction < 1` stage 1 sees more users than
    stage 2.
    """
    if labeled_fraction + test_fraction > 1.0:
        raise ValueError(
            f"`labeled_fraction` + `test_fraction` must be <= 1, got "
            f"{labeled_fraction} + {test_fraction}."
        )
    rng = np.random.default_rng(seed)
    num_items = num_topics * items_per_topic + 1
    topics = rng.integers(0, num_topics, size=num_users)

    def draw(topic: np.ndarray, size) -> np.ndarray:
        on_topic = 1 + topic[..., None] * items_per_topic + rng.integers(0, items_per_topic, size)
        anywhere = rng.integers(1, num_items, size)
        return np.where(rng.random(size) < purity, on_topic, anywhere)

    def history(min_len: int, cold: np.ndarray) -> np.ndarray:
        ids = draw(topics, (num_users, max_seq_len))
        lengths = rng.integers(min_len, max_seq_len + 1, size=num_users)
        lengths[cold] = 0
        ids[np.arange(max_seq_len)[None, :] >= lengths[:, None]] = 0
        return ids.astype("int64")

    def category(ids: np.ndarray) -> np.ndarray:
        return np.where(ids > 0, (ids - 1) // items_per_topic + 1, 0).astype("int64")

    cold = rng.random(num_users) < cold_fraction
    source = history(2, np.zeros(num_users, bool))
    target = history(1, cold)
    pairs = {
        features.SOURCE_ITEM_IDS: source,
        features.SOURCE_CATEGORIES: category(source),
        features.TARGET_ITEM_IDS: target,
        features.TARGET_CATEGORIES: category(target),
    }

    per_user = 1 + negatives_per_positive
    users = np.repeat(np.arange(num_users), per_user)
    labels = np.tile([1.0] + [0.0] * negatives_per_positive, num_users).astype("float32")
    positive_items = (
        1 + topics[users] * items_per_topic + rng.integers(0, items_per_topic, len(users))
    )
    other_topics = (topics[users] + rng.integers(1, num_topics, len(users))) % num_topics
    negative_items = (
        1 + other_topics * items_per_topic + rng.integers(0, items_per_topic, len(users))
    )
    candidates = np.where(labels == 1.0, positive_items, negative_items).astype("int64")
    examples = {name: values[users] for name, values in pairs.items()}
    examples[features.ITEM_ID] = candidates
    examples[features.ITEM_CATEGORY] = category(candidates)

    num_labeled = int(num_users * labeled_fraction)
    first_test = num_users - int(num_users * test_fraction)
    is_train, is_test = users < num_labeled, users >= first_test

    def subset(mask):
        return {name: values[mask] for name, values in examples.items()}, labels[mask]

    return PlantedData(
        pairs={name: values[:first_test] for name, values in pairs.items()},
        train=subset(is_train),
        test=subset(is_test),
        test_cold=cold[users[is_test]],
        test_pairs={name: values[first_test:] for name, values in pairs.items()},
        user_topics=topics,
        num_source_items=num_items,
        num_target_items=num_items,
        num_categories=num_topics + 1,
    )
