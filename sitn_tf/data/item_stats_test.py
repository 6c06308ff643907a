"""Candidate statistics and the negative rules of both time orders.

The property tests recompute every written statistic by brute force from the
raw rows, with formulas written here independently of `item_stats`, on seeded
random populations with tied timestamps, re-clicks and exact repeats: in
process for several seeds, and once per time order through the Beam pipeline.
"""

from __future__ import annotations

import collections
import os
import random

import pytest

from sitn_tf import features as F
from sitn_tf.data import convert_interactions
from sitn_tf.data import instances as inst
from sitn_tf.data.config import SPLITS, ConversionConfig
from sitn_tf.data.item_meta import UNKNOWN_ITEM
from sitn_tf.data.item_stats import CandidateStats, ItemStats
from sitn_tf.data.pipeline import _build_item_table
from sitn_tf.data.reading import decode_example, read_split

SOURCE, TARGET = "books", "movies"
NUM_NEGATIVES = 3


def _config(time_order: str, **overrides) -> ConversionConfig:
    settings = dict(
        source=SOURCE,
        target=TARGET,
        num_negatives=NUM_NEGATIVES,
        min_source_clicks=3,
        time_order=time_order,
        num_shards=2,
    )
    settings.update(overrides)
    return ConversionConfig(**settings)


# --------------------------------------------------------------------------
# ItemStats on a hand-made table.

TABLE = ItemStats(
    [
        ("a", [(10, "train"), (20, "train"), (20, "eval"), (30, "test")]),
        ("b", [(5, "eval")]),
    ],
    "global",
)


@pytest.mark.parametrize(
    "item, t, expected",
    [
        ("a", 10, (0, None)),  # a click at t is not before t
        ("a", 11, (1, 10)),
        ("a", 20, (1, 10)),  # neither tied click at 20 counts
        ("a", 21, (3, 10)),
        ("a", 99, (4, 10)),
        ("b", 6, (1, 5)),
        ("never", 99, (0, None)),
    ],
)
def test_clicks_before_counts_strictly_earlier_clicks(item, t, expected):
    assert TABLE.clicks_before(item, t) == expected


def test_global_candidate_statistics():
    assert TABLE.candidate("a", 21, "test", ()) == CandidateStats(3, 1, 11)
    assert TABLE.candidate("a", 10, "train", [(10, "train")]) == CandidateStats(0, 0, 0)
    assert TABLE.candidate("zzz", 10, "train", ()) == CandidateStats(0, 0, 0)


def test_per_user_candidate_statistics_count_earlier_splits():
    table = ItemStats(
        [
            ("a", [(10, "train"), (20, "train"), (20, "eval"), (30, "test")]),
            ("b", [(5, "eval")]),
        ],
        "per_user",
    )
    assert table.split_clicks("a", ("train", "eval")) == 3
    # Train: every train click except the user's own at or after t.
    own = [(10, "train"), (20, "train")]
    assert table.candidate("a", 10, "train", own) == CandidateStats(0, 0, -1)
    assert table.candidate("a", 20, "train", own) == CandidateStats(1, 1, -1)
    assert table.candidate("a", 3, "train", ()) == CandidateStats(2, 1, -1)
    # Eval counts train clicks, test counts train and eval clicks.
    assert table.candidate("a", 20, "eval", [(20, "eval")]) == CandidateStats(2, 1, -1)
    assert table.candidate("b", 1, "eval", ()) == CandidateStats(0, 0, -1)
    assert table.candidate("b", 1, "test", ()) == CandidateStats(1, 1, -1)
    assert table.candidate("a", 30, "test", [(30, "test")]) == CandidateStats(3, 1, -1)


def test_item_stats_rejects_bad_tables():
    with pytest.raises(ValueError, match="time_order"):
        ItemStats([], "local")
    with pytest.raises(ValueError, match="'a' is listed twice"):
        ItemStats([("a", [(1, "train")]), ("a", [(2, "eval")])], "global")


# --------------------------------------------------------------------------
# Brute force on random populations.


def _random_rows(seed: int) -> list[tuple[str, str, str, int]]:
    """`(user, item, domain, timestamp)`: few items and a short time range, so
    timestamps tie within and across users; re-clicks, exact repeats, and
    items of one user only (never seen by anyone else)."""
    rng = random.Random(seed)
    rows = []
    for u in range(45):
        user = f"U{u:02d}"
        for _ in range(rng.randint(2, 8)):
            rows.append((user, f"b{rng.randrange(15)}", SOURCE, rng.randrange(40)))
        for k in range(rng.randint(1, 8)):
            # Mostly a few shared items; sometimes one no other user clicks.
            item = f"m{rng.randrange(14)}" if rng.random() < 0.85 else f"r{u}-{k % 2}"
            row = (user, item, TARGET, rng.randrange(40))
            rows.append(row)
            if rng.random() < 0.1:
                rows.append(row)  # an exact repeat: one click
    rng.shuffle(rows)
    return rows


def _convert_in_process(rows, config):
    """The pipeline's per-user steps without Beam: examples per split."""
    by_user = collections.defaultdict(list)
    for user, item, domain, t in rows:
        by_user[user].append((domain, item, t, UNKNOWN_ITEM))
    kept = []
    for user_id, clicks in sorted(by_user.items()):
        user = inst.order_clicks(user_id, clicks, config)
        if inst.drop_reason(user, config) is None:
            kept.append(user)
    item_clicks = collections.defaultdict(list)
    for user in kept:
        for key, click in inst.iter_target_items(user, config):
            item_clicks[key].append(click)
    table = _build_item_table(
        ((key, tuple(sorted(clicks))) for key, clicks in item_clicks.items()), config
    )
    examples = {split: [] for split in SPLITS}
    for user in kept:
        outcome = inst.make_instances(user, config, table.sampler, table.stats)
        for instance in outcome.instances:
            examples[instance.split].append(decode_example(instance.to_example()))
    return examples


def _check_against_brute_force(rows, examples, config):
    """Recomputes every statistic and every negative rule from the raw rows."""
    # Kept users and their clicks, from the rows alone: distinct (item, time)
    # per domain are clicks; filters as configured.
    distinct = collections.defaultdict(lambda: {SOURCE: set(), TARGET: set()})
    for user, item, domain, t in rows:
        distinct[user][domain].add((item, t))
    kept = {
        user
        for user, by_domain in distinct.items()
        if len(by_domain[SOURCE]) >= config.min_source_clicks
        and len(by_domain[TARGET]) >= config.min_target_clicks
    }
    clicks = {(user, item, t) for user in kept for item, t in distinct[user][TARGET]}

    # The split of each click is read from the positives, then checked to be
    # leave-last-out (ties make which tied click is "last" the converter's choice).
    split_of = {}
    for split, split_examples in examples.items():
        for ex in split_examples:
            if ex[F.LABEL] == 1:
                key = (ex[F.USER_ID], ex[F.ITEM_ID], ex[F.EVENT_TIMESTAMP])
                assert key not in split_of
                split_of[key] = split
    assert set(split_of) == clicks
    by_user = collections.defaultdict(lambda: collections.defaultdict(list))
    for (user, _, t), split in split_of.items():
        by_user[user][split].append(t)
    for user_splits in by_user.values():
        assert len(user_splits["eval"]) == len(user_splits["test"]) == 1
        assert max(user_splits["train"], default=-1) <= user_splits["eval"][0]
        assert user_splits["eval"][0] <= user_splits["test"][0]

    item_clicks = collections.defaultdict(list)  # item -> [(user, t, split)]
    for (user, item, t), split in split_of.items():
        item_clicks[item].append((user, t, split))
    clicked_by = collections.defaultdict(set)
    for user, item, _ in clicks:
        clicked_by[user].add(item)
    # Reference splits of per_user mode, spelled out here on purpose.
    reference = {"train": {"train"}, "eval": {"train"}, "test": {"train", "eval"}}

    def counted(user, item, t, split):
        """The clicks a statistic of this instance may count."""
        if config.time_order == "global":
            return [(v, tc) for v, tc, _ in item_clicks[item] if tc < t]
        return [
            (v, tc)
            for v, tc, sc in item_clicks[item]
            if sc in reference[split] and not (v == user and tc >= t)
        ]

    def eligible(user, item, t, split):
        """Whether `item` may be a negative of this instance."""
        if item in clicked_by[user]:
            return False
        if config.time_order == "per_user":
            return any(sc in reference[split] for _, _, sc in item_clicks[item])
        if split == "train":
            return any(tc < t and sc == "train" for _, tc, sc in item_clicks[item])
        return any(tc < t for _, tc, _ in item_clicks[item])

    coverage = collections.Counter()
    for split, split_examples in examples.items():
        groups = []  # a positive, then its negatives: the order of every file
        for ex in split_examples:
            user, item, t = ex[F.USER_ID], ex[F.ITEM_ID], ex[F.EVENT_TIMESTAMP]
            if ex[F.LABEL] == 1:
                groups.append((ex, []))
            else:
                assert (groups[-1][0][F.USER_ID], groups[-1][0][F.EVENT_TIMESTAMP]) == (user, t)
                groups[-1][1].append(ex)
            prior = counted(user, item, t, split)
            if ex[F.LABEL] == 1:
                # The instance's own click is never among those counted.
                assert (user, t) not in prior
            assert ex[F.CANDIDATE_PRIOR_CLICKS] == len(prior), (split, ex)
            assert ex[F.CANDIDATE_SEEN] == int(len(prior) > 0)
            if config.time_order == "global":
                age = t - min(tc for _, tc in prior) if prior else 0
            else:
                age = -1
            assert ex[F.CANDIDATE_AGE] == age
            coverage["seen" if prior else "unseen"] += 1
            if config.time_order == "global" and any(
                tc == t and v != user for v, tc, _ in item_clicks[item]
            ):
                coverage["tie_with_another_user"] += 1
            if any(v == user and tc < t for v, tc in prior):
                coverage["own_earlier_click_counted"] += 1
        for positive, negatives in groups:
            user, t = positive[F.USER_ID], positive[F.EVENT_TIMESTAMP]
            for ex in negatives:
                assert eligible(user, ex[F.ITEM_ID], t, split), (split, ex)
                assert ex[F.CANDIDATE_SEEN] == 1  # only a positive can be unseen
            # Distinct, and no eligible item left out: as many as the set allows.
            pool = [item for item in item_clicks if eligible(user, item, t, split)]
            assert len({ex[F.ITEM_ID] for ex in negatives}) == len(negatives)
            assert len(negatives) == min(NUM_NEGATIVES, len(pool))
            coverage["negatives"] += len(negatives)
            coverage["short"] += NUM_NEGATIVES - len(negatives)
    return coverage


@pytest.mark.parametrize("time_order", ["global", "per_user"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_statistics_and_negatives_match_brute_force(seed, time_order):
    rows = _random_rows(seed)
    config = _config(time_order)
    coverage = _check_against_brute_force(rows, _convert_in_process(rows, config), config)
    # The populations exercise what the rules are about.
    assert coverage["seen"] and coverage["unseen"] and coverage["negatives"]
    assert coverage["own_earlier_click_counted"]
    if time_order == "global":
        assert coverage["tie_with_another_user"]


@pytest.mark.parametrize("time_order", ["global", "per_user"])
def test_beam_output_matches_brute_force(time_order, tmp_path):
    rows = _random_rows(11)
    path = os.path.join(tmp_path, "interactions.tsv")
    with open(path, "w") as f:
        f.write("user_id\titem_id\tdomain\ttimestamp\n")
        f.writelines(f"{u}\t{i}\t{d}\t{t}\n" for u, i, d, t in rows)
    config = _config(time_order)
    out = os.path.join(tmp_path, "out")
    stats = convert_interactions(path, out, config)
    assert stats["config"]["time_order"] == time_order
    examples = {split: list(read_split(out, split)) for split in SPLITS}
    coverage = _check_against_brute_force(rows, examples, config)
    assert coverage["seen"] and coverage["unseen"] and coverage["negatives"]
    # The same instances as the in-process steps, in file order per shard.
    in_process = _convert_in_process(rows, config)
    for split in SPLITS:
        key = [F.USER_ID, F.EVENT_TIMESTAMP, F.ITEM_ID, F.LABEL]
        assert sorted(tuple(ex[k] for k in key) for ex in examples[split]) == sorted(
            tuple(ex[k] for k in key) for ex in in_process[split]
        )
