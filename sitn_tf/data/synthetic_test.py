"""The synthetic generator: determinism, shape, and that its signal is real."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from sitn_tf import features as F
from sitn_tf.data import DataError, SyntheticConfig, generate_synthetic, prepare_synthetic_dataset
from sitn_tf.data.reading import read_split
from sitn_tf.data.synthetic import interest_name, write_synthetic_raw

SMALL = SyntheticConfig(num_users=800, items_per_domain=400, seed=11)


def test_same_seed_same_rows_other_seed_other_rows():
    small = dataclasses.replace(SMALL, num_users=50)
    first = generate_synthetic(small)
    assert first == generate_synthetic(small)
    assert (
        first.interactions != generate_synthetic(dataclasses.replace(small, seed=12)).interactions
    )


def test_rows_follow_the_configuration():
    config = dataclasses.replace(SMALL, num_users=200)
    data = generate_synthetic(config)
    assert len(data.items) == 2 * config.items_per_domain
    assert len(data.user_interests) == config.num_users
    per_user_domain = {}
    for user, item, domain, timestamp, rating in data.interactions:
        per_user_domain.setdefault((user, domain), []).append(item)
        assert data.item_interest[(domain, item)] in range(config.num_interests)
        assert 1 <= rating <= 5
        assert config.start_time <= timestamp < config.start_time + config.span_days * 86_400
    for (_, domain), items in per_user_domain.items():
        low, high = config.source_interactions if domain == "books" else config.target_interactions
        assert low <= len(items) <= high
        assert len(set(items)) == len(items)  # no repeats within a domain
    for mixture in data.user_interests.values():
        assert 1 <= len(mixture) <= config.max_user_interests
        assert sum(mixture.values()) == pytest.approx(1.0)
    for item, domain, category, *_ in data.items:
        assert category == interest_name(data.item_interest[(domain, item)])
    # Source ids look like ISBN ASINs, with leading zeros.
    assert any(item.startswith("000") for item, domain, *_ in data.items if domain == "books")


def test_clicks_follow_interests():
    data = generate_synthetic(SMALL)
    on, total = 0, 0
    for user, item, domain, _, rating in data.interactions:
        if rating >= 4:
            total += 1
            on += data.item_interest[(domain, item)] in data.user_interests[user]
    # With noise 0.2 and users holding <= 3 of 12 interests, chance is ~ 1/6.
    assert on / total > 0.8


def test_write_raw_format(tmp_path):
    data = generate_synthetic(dataclasses.replace(SMALL, num_users=5))
    interactions, items = write_synthetic_raw(data, str(tmp_path))
    lines = open(interactions).read().splitlines()
    assert lines[0] == "user_id\titem_id\tdomain\ttimestamp\trating"
    assert len(lines) == 1 + len(data.interactions)
    assert open(items).readline() == (
        "item_id\tdomain\tcategory\tbrand\ttitle\tprice_bucket\ttags\n"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_users": 0}, "`num_users` must be >= 1"),
        ({"max_user_interests": 13}, "`max_user_interests` must be in"),
        ({"source_interactions": (5, 2)}, "`source_interactions` must be a range"),
        ({"target_interactions": (1, 5000)}, "exceeds `items_per_domain`"),
        ({"noise": 1.5}, "`noise` must be in"),
        ({"target_domain": "books"}, "must differ"),
    ],
)
def test_bad_config(change, message):
    with pytest.raises(DataError, match=message):
        dataclasses.replace(SMALL, **change)


def _overlap_features(output_dir, split):
    """Interest overlap from the source history only: the share of source
    history items in the candidate's category (categories are interests)."""
    rows, labels = [], []
    for ex in read_split(output_dir, split):
        history = ex[F.SOURCE_CATEGORIES]
        overlap = np.mean([c == ex[F.ITEM_CATEGORY] for c in history]) if history else 0.0
        rows.append((overlap, float(bool(history))))
        labels.append(ex[F.LABEL])
    return np.asarray(rows), np.asarray(labels)


def _test_auc(output_dir):
    x_train, y_train = _overlap_features(output_dir, "train")
    x_test, y_test = _overlap_features(output_dir, "test")
    model = LogisticRegression(solver="liblinear").fit(x_train, y_train)
    return roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])


def test_planted_signal_beats_chance_and_vanishes_without_it(tmp_path):
    planted = str(tmp_path / "planted")
    stats = prepare_synthetic_dataset(planted, SMALL)
    assert os.path.exists(os.path.join(planted, "raw", "interactions.tsv"))
    assert stats["config"]["source"] == "books" and stats["config"]["target"] == "movies"
    assert stats["rows"]["interactions"]["dropped"]["not_a_click"] > 0
    auc = _test_auc(planted)
    assert auc > 0.75, auc

    # Control: clicks drawn regardless of interests, ratings independent of them.
    control_config = dataclasses.replace(SMALL, noise=1.0, on_interest_click=0.4)
    control = str(tmp_path / "control")
    prepare_synthetic_dataset(control, control_config)
    control_auc = _test_auc(control)
    assert abs(control_auc - 0.5) < 0.05, control_auc
    print(f"planted-signal test AUC {auc:.3f}, control {control_auc:.3f}")


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="--overwrite"):
        prepare_synthetic_dataset(str(tmp_path), SMALL)
    assert not (tmp_path / "raw").exists()


def test_item_attributes_are_correlated_with_the_category():
    data = generate_synthetic(SMALL)
    items = [row for row in data.items if row[1] == "movies"]
    brand_category = {}
    for _, _, category, brand, _, price, tags in items:
        brand_category.setdefault(brand, set()).add(category)
        assert 0 <= int(price) < 5 and 1 <= len(tags.split("|")) <= 3
    # Brand determines category; each category has at most 3 brands.
    assert all(len(c) == 1 for c in brand_category.values())
    assert len(brand_category) <= 3 * SMALL.num_interests
    # Most items share their brand's most common price bucket (0.7 + 0.3 / 5).
    by_brand = {}
    for _, _, _, brand, _, price, _ in items:
        by_brand.setdefault(brand, []).append(price)
    modal = sum(max(p.count(v) for v in set(p)) for p in by_brand.values()) / len(items)
    assert modal > 0.65
    # Tags come mostly from the category's own 4 tags.
    own = {}
    for _, _, category, _, _, _, tags in items:
        own.setdefault(category, []).extend(tags.split("|"))
    top4 = sum(
        sum(sorted((t.count(v) for v in set(t)), reverse=True)[:4]) for t in own.values()
    ) / sum(len(t) for t in own.values())
    assert top4 > 0.75


def test_converted_examples_carry_the_generated_item_attributes(tmp_path):
    config = dataclasses.replace(SMALL, num_users=150)
    out = str(tmp_path / "out")
    prepare_synthetic_dataset(out, config)
    data = generate_synthetic(config)
    attributes = {
        item: (brand, price, tags.split("|") if tags else [])
        for item, domain, _, brand, _, price, tags in data.items
        if domain == config.target_domain
    }
    labels = set()
    for split in ("train", "eval", "test"):
        for ex in read_split(out, split):
            got = (ex[F.ITEM_BRAND], ex[F.ITEM_PRICE_BUCKET], ex[F.ITEM_TAGS])
            assert got == attributes[ex[F.ITEM_ID]]
            assert got[0] and got[1] and got[2]  # the generator states every attribute
            labels.add(ex[F.LABEL])
    assert labels == {0, 1}  # positives and sampled negatives alike
