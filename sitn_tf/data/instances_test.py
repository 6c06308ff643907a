"""Per-user instance logic: ordering, filters, histories, negatives, splits."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from sitn_tf import features
from sitn_tf.data import instances as inst
from sitn_tf.data.config import ConversionConfig
from sitn_tf.data.item_meta import ItemMeta
from sitn_tf.data.item_stats import ItemStats
from sitn_tf.data.reading import decode_example

CONFIG = ConversionConfig(source="books", target="movies", num_negatives=2)
# Tests of negatives and histories need no click times: every candidate is unseen.
NO_STATS = ItemStats([], "global")


def _make(user, config, sampler, item_stats=NO_STATS):
    return inst.make_instances(user, config, sampler, item_stats)


def _user(clicks, config=CONFIG, user_id="u1"):
    """Orders `(domain, item, t, meta)` clicks; a str meta is shorthand for a category."""
    clicks = [(d, i, t, ItemMeta(m) if isinstance(m, str) else m) for d, i, t, m in clicks]
    return inst.order_clicks(user_id, clicks, config)


_FIRST = object()


def _sampler(counts, mode="popularity", first_click=None, first_train=_FIRST):
    """A sampler over `counts`; by default every item's first click is in train."""
    first_click = first_click or {}
    rows = []
    for item, n in counts.items():
        first = first_click.get(item, 0)
        train = first if first_train is _FIRST else first_train.get(item)
        rows.append((item, ItemMeta(f"cat-{item}"), n, first, train))
    return inst.NegativeSampler(rows, mode)


def test_order_clicks_sorts_by_time_and_drops_exact_repeats():
    user = _user(
        [
            ("movies", "m2", 30, "c"),
            ("books", "b1", 20, ""),
            ("movies", "m1", 10, "c"),
            ("movies", "m1", 10, "c"),  # exact repeat
            ("movies", "m1", 40, "c"),  # re-click later: kept
        ]
    )
    c = ItemMeta("c")
    assert user.source == (("b1", 20, ItemMeta()),)
    assert user.target == (("m1", 10, c), ("m2", 30, c), ("m1", 40, c))
    assert user.duplicates == 1


def test_tied_clicks_order_is_stable_and_id_independent():
    clicks = [("movies", f"m{i}", 5, "") for i in range(20)]
    first = _user(clicks).target
    assert first == _user(list(reversed(clicks))).target
    # Ties are not ordered by item id (that would bias which item is "last").
    assert [e[0] for e in first] != sorted(e[0] for e in first)


@pytest.mark.parametrize(
    "n_source, n_target, reason",
    [
        (0, 3, inst.DROP_NO_SOURCE),
        (6, 0, inst.DROP_NO_TARGET),
        (4, 3, inst.DROP_FEW_SOURCE),
        (5, 1, inst.DROP_FEW_TARGET),
        (5, 2, None),
    ],
)
def test_drop_reason(n_source, n_target, reason):
    clicks = [("books", f"b{i}", i, "") for i in range(n_source)]
    clicks += [("movies", f"m{i}", i, "") for i in range(n_target)]
    assert inst.drop_reason(_user(clicks), CONFIG) == reason


def test_histories_hold_only_clicks_strictly_before_the_instance():
    clicks = [
        ("books", "b1", 10, "x"),
        ("books", "b2", 20, "y"),
        ("books", "b3", 30, "x"),  # same time as m2: not in m2's history
        ("books", "b4", 50, "y"),
        ("movies", "m1", 15, "x"),
        ("movies", "m2", 30, "y"),
        ("movies", "m3", 30, "x"),  # tied with m2: neither sees the other
        ("movies", "m4", 60, "y"),
    ]
    sampler = _sampler({"m1": 1, "m2": 1, "m3": 1, "m4": 1, "n1": 5, "n2": 5, "n3": 5})
    outcome = _make(_user(clicks), CONFIG, sampler)
    positives = {i.item_id: i for i in outcome.instances if i.label == 1}
    assert positives["m1"].source_items == ("b1",)
    assert positives["m1"].target_items == ()
    for item in ("m2", "m3"):
        assert positives[item].source_items == ("b1", "b2")
        assert positives[item].source_categories == ("x", "y")
        assert positives[item].target_items == ("m1",)
    assert positives["m4"].source_items == ("b1", "b2", "b3", "b4")
    assert set(positives["m4"].target_items[:1]) == {"m1"}
    assert set(positives["m4"].target_items) == {"m1", "m2", "m3"}


def test_histories_keep_the_most_recent_max_seq_len():
    config = ConversionConfig(source="books", target="movies", max_seq_len=3)
    clicks = [("books", f"b{i}", i, "") for i in range(10)]
    clicks += [("movies", "m0", 5, ""), ("movies", "m1", 100, "")]
    outcome = _make(_user(clicks, config), config, _sampler({"z": 1}))
    positives = [i for i in outcome.instances if i.label == 1]
    assert positives[0].source_items == ("b2", "b3", "b4")
    assert positives[1].source_items == ("b7", "b8", "b9")


def test_negatives_are_unclicked_distinct_and_share_the_positive_context():
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    clicks += [("movies", f"m{i}", 10 + i, "") for i in range(6)]
    counts = {f"m{i}": 50 for i in range(6)} | {f"n{i}": 1 + i for i in range(8)}
    config = ConversionConfig(source="books", target="movies", num_negatives=4)
    outcome = _make(_user(clicks, config), config, _sampler(counts))
    assert outcome.negatives_short == 0
    assert len(outcome.instances) == 6 * 5
    for start in range(0, len(outcome.instances), 5):
        group = outcome.instances[start : start + 5]
        positive, negatives = group[0], group[1:]
        assert positive.label == 1 and all(n.label == 0 for n in negatives)
        assert len({n.item_id for n in negatives}) == 4
        for negative in negatives:
            assert not negative.item_id.startswith("m")
            assert negative.item_category == f"cat-{negative.item_id}"
            assert negative.event_timestamp == positive.event_timestamp
            assert negative.source_items == positive.source_items
            assert negative.target_items == positive.target_items
            assert negative.split == positive.split


def test_negatives_fall_back_when_the_user_clicked_almost_everything():
    sampler = _sampler({"a": 1000, "b": 1000, "c": 1})
    rng = np.random.default_rng(0)
    assert sampler.sample(rng, {"a", "b"}, 3) == [("c", ItemMeta("cat-c"))]
    assert sampler.sample(rng, {"a", "b", "c"}, 3) == []


@pytest.mark.parametrize("mode", ["popularity", "uniform"])
def test_sampler_frequencies_follow_the_mode(mode):
    counts = {"a": 1, "b": 2, "c": 3, "d": 4}
    sampler = _sampler(counts, mode)
    rng = np.random.default_rng(123)
    drawn = collections.Counter(
        item for _ in range(20_000) for item, _ in sampler.sample(rng, set(), 1)
    )
    total = sum(counts.values())
    for item, count in counts.items():
        expected = count / total if mode == "popularity" else 0.25
        assert drawn[item] / 20_000 == pytest.approx(expected, abs=0.015)


@pytest.mark.parametrize("mode", ["popularity", "uniform"])
def test_negatives_only_come_from_items_clicked_before_the_instance(mode):
    counts = {"old": 1, "mid": 5, "new": 1000}
    first = {"old": 10, "mid": 20, "new": 30}
    sampler = _sampler(counts, mode, first)
    rng = np.random.default_rng(5)
    assert sampler.sample(rng, set(), 3, before=10) == []  # nothing existed yet
    assert sampler.sample(rng, set(), 3, before=11) == [("old", ItemMeta("cat-old"))]
    drawn = {item for _ in range(200) for item, _ in sampler.sample(rng, set(), 1, before=30)}
    assert drawn == {"old", "mid"}  # "new" is first clicked at 30, not before
    assert {i for i, _ in sampler.sample(rng, set(), 3, before=31)} == {"old", "mid", "new"}


def test_make_instances_draws_no_future_items():
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    clicks += [("movies", "m0", 100, ""), ("movies", "m1", 200, ""), ("movies", "m2", 300, "")]
    counts = {f"n{i}": 10 for i in range(6)} | {"m0": 1, "m1": 1, "m2": 1}
    first = {f"n{i}": 50 * i for i in range(6)}  # n0 at 0 ... n5 at 250
    config = ConversionConfig(source="books", target="movies", num_negatives=3)
    outcome = _make(_user(clicks, config), config, _sampler(counts, first_click=first))
    for instance in outcome.instances:
        if instance.label == 0:
            assert first[instance.item_id] < instance.event_timestamp
    # At t=100 only n0 and n1 existed: one of the three negatives is missing.
    assert outcome.negatives_short == 1


# A table where the two rules differ: "b" was clicked at 10 but only entered
# the train split at 40, "c" was never clicked in the train split.
RULE_COUNTS = {"a": 1, "b": 2, "c": 100, "d": 3}
RULE_FIRST = {"a": 10, "b": 10, "c": 20, "d": 30}
RULE_FIRST_TRAIN = {"a": 10, "b": 40, "c": None, "d": 30}


@pytest.mark.parametrize("mode", ["popularity", "uniform"])
@pytest.mark.parametrize(
    "before, any_split, train_only",
    [
        (10, set(), set()),
        (11, {"a", "b"}, {"a"}),
        (25, {"a", "b", "c"}, {"a"}),
        (31, {"a", "b", "c", "d"}, {"a", "d"}),
        (41, {"a", "b", "c", "d"}, {"a", "b", "d"}),
        (None, {"a", "b", "c", "d"}, {"a", "b", "d"}),
    ],
)
def test_eligible_items_follow_the_split_rule(mode, before, any_split, train_only):
    sampler = _sampler(RULE_COUNTS, mode, RULE_FIRST, RULE_FIRST_TRAIN)
    rng = np.random.default_rng(0)
    assert sampler.eligible(before) == len(any_split)
    assert sampler.eligible(before, train_only=True) == len(train_only)
    # Asking for more than exist returns every eligible item.
    assert {i for i, _ in sampler.sample(rng, set(), 5, before=before)} == any_split
    got = sampler.sample(rng, set(), 5, before=before, train_only=True)
    assert {i for i, _ in got} == train_only
    assert all(meta == ItemMeta(f"cat-{i}") for i, meta in got)


def test_train_only_popularity_uses_whole_range_counts():
    sampler = _sampler(RULE_COUNTS, "popularity", RULE_FIRST, RULE_FIRST_TRAIN)
    rng = np.random.default_rng(7)
    drawn = collections.Counter(
        item
        for _ in range(20_000)
        for item, _ in sampler.sample(rng, set(), 1, before=31, train_only=True)
    )
    assert set(drawn) == {"a", "d"}
    assert drawn["a"] / 20_000 == pytest.approx(1 / 4, abs=0.015)  # counts 1 and 3
    excluded = sampler.sample(rng, {"d"}, 2, before=None, train_only=True)
    assert {i for i, _ in excluded} == {"a", "b"}


def test_sampler_without_train_clicks_draws_no_train_negatives():
    sampler = _sampler({"a": 1, "b": 1}, first_train={})
    rng = np.random.default_rng(0)
    assert sampler.eligible(None, train_only=True) == 0
    assert sampler.sample(rng, set(), 2, train_only=True) == []
    assert len(sampler.sample(rng, set(), 2)) == 2


def test_make_instances_gives_train_negatives_only_train_clicked_items():
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    # m0..m3 train, m4 eval, m5 test.
    clicks += [("movies", f"m{i}", 100 * (i + 1), "") for i in range(6)]
    counts = {f"m{i}": 1 for i in range(6)} | {f"n{i}": 5 + i for i in range(8)}
    first = {f"m{i}": 0 for i in range(6)} | {f"n{i}": 60 * i for i in range(8)}
    # Odd items only ever clicked in eval/test; even ones enter train 30 later.
    first_train = {item: (None if int(item[1]) % 2 else t + 30) for item, t in first.items()}
    config = ConversionConfig(source="books", target="movies", num_negatives=3)
    outcome = _make(
        _user(clicks, config), config, _sampler(counts, "popularity", first, first_train)
    )
    by_split = collections.defaultdict(set)
    short = collections.Counter()
    groups = collections.defaultdict(list)
    for instance in outcome.instances:
        groups[instance.event_timestamp].append(instance)
    assert len(groups) == 6
    for t, (positive, *negatives) in groups.items():
        split = positive.split
        assert positive.label == 1
        for negative in negatives:
            item = negative.item_id
            by_split[split].add(item)
            assert first[item] < t
            if split == "train":
                assert first_train[item] is not None and first_train[item] < t
        # Exactly the eligible items, up to three of them.
        if split == "train":
            eligible = [i for i, ft in first_train.items() if ft is not None and ft < t]
        else:
            eligible = [i for i, f in first.items() if f < t]
        eligible = [i for i in eligible if not i.startswith("m")]
        assert len(negatives) == min(3, len(eligible))
        short[split] += 3 - len(negatives)
    assert by_split["train"] <= {"n0", "n2", "n4", "n6"}
    # Eval and test keep the looser rule: items never clicked in train appear.
    assert (by_split["eval"] | by_split["test"]) & {"n1", "n3", "n5", "n7"}
    assert outcome.negatives_short_by_split == {s: n for s, n in short.items() if n}
    assert outcome.negatives_short == sum(short.values())
    assert short["train"] > 0 and short["test"] == 0


def test_iter_target_items_marks_the_split_of_each_click():
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    clicks += [("movies", f"m{i}", 10 * i, f"c{i}") for i in range(4)]
    rows = list(inst.iter_target_items(_user(clicks), CONFIG))
    assert rows == [
        (("m0", ItemMeta("c0")), (0, "train")),
        (("m1", ItemMeta("c1")), (10, "train")),
        (("m2", ItemMeta("c2")), (20, "eval")),
        (("m3", ItemMeta("c3")), (30, "test")),
    ]


@pytest.mark.parametrize(
    "time_order, expected",
    [
        ("global", [("a", "", 3, 20, 30), ("b", "", 1, 5, None)]),
        ("per_user", [("a", "", 3, 0, 0), ("b", "", 1, 1, None)]),
    ],
)
def test_sampler_rows_per_time_order(time_order, expected):
    clicks = [(("a", ""), ((20, "eval"), (30, "train"), (40, "test"))), (("b", ""), ((5, "eval"),))]
    assert inst.sampler_rows(clicks, time_order) == expected


def test_per_user_negatives_come_from_earlier_splits():
    config = ConversionConfig(
        source="books", target="movies", num_negatives=5, time_order="per_user"
    )
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    clicks += [("movies", f"m{i}", i, "") for i in range(4)]  # m0, m1 train; m2 eval; m3 test
    # Whatever their times: only the split of a click counts.
    table = [
        (("tr", ItemMeta()), ((900, "train"), (5, "test"))),
        (("ev", ItemMeta()), ((-7, "eval"),)),
        (("te", ItemMeta()), ((-9, "test"),)),
        (("m0", ItemMeta()), ((0, "train"),)),
    ]
    sampler = inst.NegativeSampler(inst.sampler_rows(table, "per_user"), "popularity")
    outcome = _make(_user(clicks, config), config, sampler)
    negatives = collections.defaultdict(set)
    for instance in outcome.instances:
        if instance.label == 0:
            negatives[instance.split].add(instance.item_id)
    assert negatives == {"train": {"tr"}, "eval": {"tr"}, "test": {"tr", "ev"}}


def test_sampler_rejects_bad_tables():
    with pytest.raises(ValueError, match="must not be empty"):
        inst.NegativeSampler([], "popularity")
    with pytest.raises(ValueError, match="positive"):
        inst.NegativeSampler([("a", "", 0, 0, 0)], "popularity")
    with pytest.raises(ValueError, match="'a': first train-split click 5 is before"):
        inst.NegativeSampler([("a", "", 1, 9, 5)], "popularity")


def test_leave_last_out_splits_follow_time():
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    clicks += [("movies", f"m{i}", 100 - i, "") for i in range(5)]  # m4 oldest
    config = ConversionConfig(source="books", target="movies", num_negatives=0)
    outcome = _make(_user(clicks, config), config, _sampler({"z": 1}))
    by_split = {i.item_id: i.split for i in outcome.instances}
    assert by_split == {"m4": "train", "m3": "train", "m2": "train", "m1": "eval", "m0": "test"}


def test_time_split_uses_global_cutoffs():
    config = ConversionConfig(
        source="books", target="movies", num_negatives=0, split="time",
        eval_start=50, test_start=80, min_target_clicks=1,
    )  # fmt: skip
    clicks = [("books", "b", 1, "")] * 1 + [
        ("movies", "early", 10, ""),
        ("movies", "mid", 50, ""),
        ("movies", "late", 80, ""),
    ]
    outcome = _make(_user(clicks, config), config, _sampler({"z": 1}))
    assert {i.item_id: i.split for i in outcome.instances} == {
        "early": "train",
        "mid": "eval",
        "late": "test",
    }


def test_same_seed_same_negatives_other_seed_other_negatives():
    clicks = [("books", f"b{i}", i, "") for i in range(5)]
    clicks += [("movies", f"m{i}", 10 + i, "") for i in range(4)]
    counts = {f"n{i}": 1 for i in range(200)}

    def negatives(seed):
        config = ConversionConfig(source="books", target="movies", seed=seed)
        out = _make(_user(clicks, config), config, _sampler(counts))
        return [i.item_id for i in out.instances if i.label == 0]

    assert negatives(1) == negatives(1)
    assert negatives(1) != negatives(2)


def test_stable_hash_is_fixed():
    # Shards and seeds depend on it: it must never change between runs.
    assert inst.stable_hash("A006458827ALF2J23JJTO") == inst.stable_hash("A006458827ALF2J23JJTO")
    assert inst.stable_hash("a", "b") != inst.stable_hash("ab")
    assert inst.stable_hash("user") == int.from_bytes(
        __import__("hashlib").blake2b(b"user", digest_size=8).digest(), "big"
    )


def test_to_example_round_trip_and_determinism():
    instance = inst.Instance(
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
        candidate_prior_clicks=7,
        candidate_seen=1,
        candidate_age=86_400,
        item_brand="Acme",
        item_price_bucket="3",
        item_tags=("cozy", "noir"),
    )
    data = instance.to_example()
    assert data == instance.to_example()
    assert decode_example(data) == {
        features.USER_ID: "A1",
        features.ITEM_ID: "0001234567",
        features.ITEM_CATEGORY: "",
        features.SOURCE_ITEM_IDS: ["0000000001", "B2"],
        features.SOURCE_CATEGORIES: ["Fantasy", ""],
        features.TARGET_ITEM_IDS: [],
        features.TARGET_CATEGORIES: [],
        features.LABEL: 1,
        features.EVENT_TIMESTAMP: 1_399_939_200,
        features.CANDIDATE_PRIOR_CLICKS: 7,
        features.CANDIDATE_SEEN: 1,
        features.CANDIDATE_AGE: 86_400,
        features.ITEM_BRAND: "Acme",
        features.ITEM_PRICE_BUCKET: "3",
        features.ITEM_TAGS: ["cozy", "noir"],
    }


def test_example_before_item_attributes_decodes_them_as_unknown():
    # Data converted before the attributes existed has no such keys.
    from tensorflow.core.example import example_pb2

    instance = inst.Instance(
        split="train", user_id="A1", item_id="X", item_category="c", source_items=(),
        source_categories=(), target_items=(), target_categories=(), label=0,
        event_timestamp=5, order=0, item_brand="Acme", item_price_bucket="1", item_tags=("t",),
    )  # fmt: skip
    example = example_pb2.Example.FromString(instance.to_example())
    for name in features.OPTIONAL_FEATURES:
        del example.features.feature[name]
    decoded = decode_example(example.SerializeToString())
    assert decoded[features.ITEM_BRAND] == ""
    assert decoded[features.ITEM_PRICE_BUCKET] == ""
    assert decoded[features.ITEM_TAGS] == []
    assert decoded[features.ITEM_CATEGORY] == "c"


def test_candidates_carry_their_own_attributes_positives_and_negatives():
    meta = {
        "m1": ItemMeta("drama", "Acme", "2", ("noir", "short")),
        "m2": ItemMeta("comedy", "", "0", ()),
        "n1": ItemMeta("drama", "Brio", "", ("long",)),
        "n2": ItemMeta(),
    }
    clicks = [("books", "b1", 1, ItemMeta("x", "BookBrand", "9", ("bt",)))]
    clicks += [("movies", "m1", 10, meta["m1"]), ("movies", "m2", 20, meta["m2"])]
    rows = [(item, meta[item], 5, 0, 0) for item in ("m1", "m2", "n1", "n2")]
    sampler = inst.NegativeSampler(rows, "uniform")
    outcome = _make(_user(clicks), CONFIG, sampler)
    # Each positive draws both unclicked items (num_negatives = 2).
    assert len(outcome.instances) == 2 * 3
    for instance in outcome.instances:
        expected = meta[instance.item_id]
        assert instance.item_category == expected.category
        assert instance.item_brand == expected.brand
        assert instance.item_price_bucket == expected.price_bucket
        assert instance.item_tags == expected.tags
        decoded = decode_example(instance.to_example())
        assert decoded[features.ITEM_BRAND] == expected.brand
        assert decoded[features.ITEM_PRICE_BUCKET] == expected.price_bucket
        assert decoded[features.ITEM_TAGS] == list(expected.tags)
        # Histories carry categories only: a history item's brand is not written.
        assert instance.source_categories == ("x",)
    negatives = {i.item_id for i in outcome.instances if i.label == 0}
    assert negatives == {"n1", "n2"}
