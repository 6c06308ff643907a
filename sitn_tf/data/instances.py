"""Per-user logic: click ordering, filters, instances, negatives, splits.

Pure Python and numpy, no Beam: the pipeline calls these once per user group,
and the tests call them directly.

No leakage: an instance at time t sees only clicks with timestamp strictly
below t, in both domains. Clicks with equal timestamps (common: Amazon times
have day resolution) are ordered by a stable hash of (user, item), so ties get
an arbitrary but reproducible order that favours no kind of item id; tied
clicks never see each other in their histories.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from tensorflow.core.example import example_pb2

from sitn_tf import features
from sitn_tf.data.config import (
    SAMPLING_POPULARITY,
    SPLIT_LEAVE_LAST_OUT,
    SPLITS,
    TIME_ORDER_GLOBAL,
    ConversionConfig,
)
from sitn_tf.data.item_meta import ItemMeta
from sitn_tf.data.item_stats import ItemClick, ItemStats

# (domain, item_id, timestamp, item metadata): one click of a user after the
# join with item metadata.
UserClick = tuple[str, str, int, ItemMeta]
# (item_id, timestamp, item metadata) in one domain, in time order.
Event = tuple[str, int, ItemMeta]

DROP_NO_SOURCE = "no_source_clicks"
DROP_NO_TARGET = "no_target_clicks"
DROP_FEW_SOURCE = "too_few_source_clicks"
DROP_FEW_TARGET = "too_few_target_clicks"
DROP_REASONS = (DROP_NO_SOURCE, DROP_NO_TARGET, DROP_FEW_SOURCE, DROP_FEW_TARGET)


def stable_hash(*parts: str) -> int:
    """A 64-bit hash that is the same in every process and on every run.

    Python's `hash` of str is salted per process, so it cannot shard or seed.
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def user_rng(seed: int, user_id: str) -> np.random.Generator:
    """The user's own RNG: independent of worker, bundle and arrival order."""
    return np.random.Generator(np.random.PCG64(stable_hash(str(seed), user_id)))


@dataclasses.dataclass(frozen=True)
class UserClicks:
    """A user's deduplicated clicks per domain, oldest first."""

    user_id: str
    source: tuple[Event, ...]
    target: tuple[Event, ...]
    duplicates: int  # exact repeats (same domain, item, timestamp) removed


def order_clicks(user_id: str, clicks: Iterable[UserClick], config: ConversionConfig) -> UserClicks:
    """Splits a user's clicks by domain, drops exact repeats, sorts by time."""
    by_domain: dict[str, set[Event]] = {
        config.source: set(),
        config.target: set(),
    }
    total = 0
    for domain, item, timestamp, meta in clicks:
        total += 1
        # The pipeline ships metadata as a plain tuple across its shuffle.
        by_domain[domain].add((item, timestamp, ItemMeta(*meta)))

    def ordered(events: set[Event]) -> tuple[Event, ...]:
        # A repeated (item, timestamp) with two metadata records can only come
        # from inconsistent metadata; keep one deterministically.
        unique: dict[tuple[str, int], ItemMeta] = {}
        for item, timestamp, meta in sorted(events):
            unique.setdefault((item, timestamp), meta)
        return tuple(
            sorted(
                ((item, ts, meta) for (item, ts), meta in unique.items()),
                key=lambda e: (e[1], stable_hash(user_id, e[0]), e[0]),
            )
        )

    source = ordered(by_domain[config.source])
    target = ordered(by_domain[config.target])
    return UserClicks(
        user_id=user_id,
        source=source,
        target=target,
        duplicates=total - len(source) - len(target),
    )


def drop_reason(user: UserClicks, config: ConversionConfig) -> str | None:
    """Why the user fails the filters, or None if kept."""
    if not user.source:
        return DROP_NO_SOURCE
    if not user.target:
        return DROP_NO_TARGET
    if len(user.source) < config.min_source_clicks:
        return DROP_FEW_SOURCE
    if len(user.target) < config.min_target_clicks:
        return DROP_FEW_TARGET
    return None


class NegativeSampler:
    """Draws target-domain items a user never clicked, among items that existed.

    An instance at time t only gets negatives that some kept user clicked
    strictly before t: an item first clicked later did not exist yet, and
    drawing it would leak the future into the past (a model then learns that
    "unseen in training" means "not clicked", the opposite of what holds for
    new items at test time).

    Train instances are stricter: their negatives are items with a click *in
    the train split* (by any kept user) strictly before t. The model's item
    vocabulary is built from the train split only, so an item never clicked
    there is out of vocabulary. Under the looser rule such items were only
    ever train negatives, never train positives, so the model learned
    "out of vocabulary means no click"; on Amazon Books -> Movies with
    leave-last-out splits, 12.4% of train negatives were such items against
    none of the train positives, while 37.5% of test positives were, and test
    AUC fell to 0.38. Eval and test instances keep the looser rule: they
    measure the model on the items that existed, known to it or not.

    Popularity sampling draws an eligible item i with probability
    count_i / sum(count over eligible items), by binary search of a uniform
    integer in the cumulative counts (exact integer arithmetic, so identical on
    every platform); uniform sampling ignores the counts. Counts are clicks
    over the whole time range and all splits, for both rules: popularity is a
    property of the item, eligibility is what depends on t and the split.
    Draws are rejected when the user clicked the item or it was already drawn
    for the same positive, so negatives of one positive are distinct.

    Items are kept in two orderings, by first click and by first train-split
    click, each with its own cumulative counts, so the eligible items of
    either rule are a prefix found by binary search.

    With `time_order="per_user"` the "times" of this table are split ranks
    (see `sampler_rows`), so the same prefixes select items by the split of
    their clicks; `negative_rule` gives the arguments for each instance.

    Args:
      item_counts: `(item_id, item metadata, count, first_click_time,
        first_train_click_time)` for every candidate item;
        `first_train_click_time` is None for an item with no train-split
        click.
      mode: `popularity` or `uniform`.
    """

    def __init__(
        self, item_counts: Iterable[tuple[str, ItemMeta, int, int, int | None]], mode: str
    ) -> None:
        # Ordered by first click, so the items that exist before any t are a prefix.
        rows = sorted(item_counts, key=lambda row: (row[3], row[0], row[1]))
        if not rows:
            raise ValueError("`item_counts` must not be empty")
        self.items = [row[0] for row in rows]
        self.metas = [row[1] for row in rows]
        counts = np.asarray([row[2] for row in rows], dtype=np.int64)
        if np.any(counts <= 0):
            raise ValueError("`item_counts` must be positive")
        for item, _, _, first, first_train in rows:
            if first_train is not None and first_train < first:
                raise ValueError(
                    f"item {item!r}: first train-split click {first_train} is before "
                    f"its first click {first}"
                )
        self._counts = counts
        self.mode = mode
        self.first_click = np.asarray([row[3] for row in rows], dtype=np.int64)
        self._any = self._ordering(np.arange(len(rows), dtype=np.int64))
        # The same items again, only those with a train-split click, ordered by
        # that click (ties broken like the first ordering).
        with_train = sorted(
            (i for i, row in enumerate(rows) if row[4] is not None),
            key=lambda i: (rows[i][4], i),
        )
        self.first_train_click = np.asarray([rows[i][4] for i in with_train], dtype=np.int64)
        self._train = self._ordering(np.asarray(with_train, dtype=np.int64))

    def _ordering(self, order: np.ndarray) -> tuple[list[int], list[str], np.ndarray | None]:
        """`(item indices, item ids, cumulative counts or None)` for one ordering.

        Plain lists, because the rejection loop indexes them one draw at a time.
        """
        cumulative = np.cumsum(self._counts[order]) if self.mode == SAMPLING_POPULARITY else None
        indices = order.tolist()
        return indices, [self.items[i] for i in indices], cumulative

    def __len__(self) -> int:
        return len(self.items)

    def eligible(self, before: int | None, train_only: bool = False) -> int:
        """How many items (a prefix of the rule's ordering) are eligible.

        Items first clicked strictly before `before`; with `train_only`, items
        first clicked in the train split strictly before `before`.
        """
        times = self.first_train_click if train_only else self.first_click
        if before is None:
            return len(times)
        return int(np.searchsorted(times, before, side="left"))

    def sample(
        self,
        rng: np.random.Generator,
        exclude: set[str],
        k: int,
        before: int | None = None,
        train_only: bool = False,
    ) -> list[tuple[str, ItemMeta]]:
        """Returns up to `k` distinct `(item_id, item metadata)` not in `exclude`.

        With `before`, only items first clicked strictly before it are drawn;
        with `train_only` as well, only items first clicked in the train split
        strictly before it. Fewer than `k` only when fewer such unclicked items
        exist.
        """
        order, names, cumulative = self._train if train_only else self._any
        n = self.eligible(before, train_only)
        if n == 0 or k <= 0:
            return []
        chosen: list[int] = []  # positions in `order`
        seen: set[int] = set()
        for _ in range(8):
            if len(chosen) >= k:
                break
            size = 2 * (k - len(chosen)) + 2
            if cumulative is None:
                drawn = rng.integers(0, n, size=size)
            else:
                total = int(cumulative[n - 1])
                drawn = np.searchsorted(cumulative, rng.integers(0, total, size=size), side="right")
            for position in drawn.tolist():
                if position in seen or names[position] in exclude:
                    continue
                seen.add(position)
                chosen.append(position)
                if len(chosen) == k:
                    break
        if len(chosen) < k:
            # The user clicked most of the probability mass: enumerate what is
            # left instead of rejecting forever.
            left = [p for p in range(n) if p not in seen and names[p] not in exclude]
            need = min(k - len(chosen), len(left))
            if need:
                if cumulative is None:
                    weights = None
                else:
                    counts = self._counts[[order[p] for p in left]]
                    weights = counts / counts.sum()
                picked = rng.choice(len(left), size=need, replace=False, p=weights)
                chosen.extend(left[i] for i in picked.tolist())
        return [(self.items[order[p]], self.metas[order[p]]) for p in chosen]


@dataclasses.dataclass(frozen=True)
class Instance:
    """One CTR example: a candidate target item and the histories before it."""

    split: str
    user_id: str
    item_id: str
    item_category: str
    source_items: tuple[str, ...]
    source_categories: tuple[str, ...]
    target_items: tuple[str, ...]
    target_categories: tuple[str, ...]
    label: int
    event_timestamp: int
    order: int  # position among the user's instances, for stable file order
    # Statistics of the candidate (`item_stats`); the defaults describe an
    # unseen candidate of unknown age.
    candidate_prior_clicks: int = 0
    candidate_seen: int = 0
    candidate_age: int = -1
    # Attributes of the candidate from the item metadata; "" / () = unknown.
    item_brand: str = ""
    item_price_bucket: str = ""
    item_tags: tuple[str, ...] = ()

    def to_example(self) -> bytes:
        """Serializes to `tf.train.Example` bytes, deterministically."""
        example = example_pb2.Example()
        feature = example.features.feature

        def put_bytes(name: str, values: Sequence[str]) -> None:
            feature[name].bytes_list.value.extend(v.encode("utf-8") for v in values)

        put_bytes(features.USER_ID, (self.user_id,))
        put_bytes(features.ITEM_ID, (self.item_id,))
        put_bytes(features.ITEM_CATEGORY, (self.item_category,))
        put_bytes(features.SOURCE_ITEM_IDS, self.source_items)
        put_bytes(features.SOURCE_CATEGORIES, self.source_categories)
        put_bytes(features.TARGET_ITEM_IDS, self.target_items)
        put_bytes(features.TARGET_CATEGORIES, self.target_categories)
        feature[features.LABEL].int64_list.value.append(self.label)
        feature[features.EVENT_TIMESTAMP].int64_list.value.append(self.event_timestamp)
        feature[features.CANDIDATE_PRIOR_CLICKS].int64_list.value.append(
            self.candidate_prior_clicks
        )
        feature[features.CANDIDATE_SEEN].int64_list.value.append(self.candidate_seen)
        feature[features.CANDIDATE_AGE].int64_list.value.append(self.candidate_age)
        # Written even when unknown ("" / no tags), like item_category, so every
        # newly converted example has the same keys.
        put_bytes(features.ITEM_BRAND, (self.item_brand,))
        put_bytes(features.ITEM_PRICE_BUCKET, (self.item_price_bucket,))
        put_bytes(features.ITEM_TAGS, self.item_tags)
        # Map fields have no defined wire order unless asked for one.
        return example.SerializeToString(deterministic=True)


def _history(events: Sequence[Event], times: Sequence[int], t: int, max_len: int):
    end = bisect.bisect_left(times, t)  # strictly before t
    window = events[max(0, end - max_len) : end]
    return tuple(e[0] for e in window), tuple(e[2].category for e in window)


def split_of(position: int, count: int, timestamp: int, config: ConversionConfig) -> str:
    """The split of the user's `position`-th of `count` target clicks."""
    if config.split == SPLIT_LEAVE_LAST_OUT:
        if position == count - 1:
            return "test"
        if position == count - 2:
            return "eval"
        return "train"
    if timestamp >= config.test_start:
        return "test"
    if timestamp >= config.eval_start:
        return "eval"
    return "train"


# Per-user mode: the "time" of a click in the sampler's table is its split's rank.
SPLIT_RANK = {split: rank for rank, split in enumerate(SPLITS)}


def negative_rule(split: str, t: int, config: ConversionConfig) -> tuple[int | None, bool]:
    """`(before, train_only)` for `NegativeSampler.sample` of an instance at `t` in `split`.

    `global`: items first clicked strictly before t; for train instances,
    items first clicked in the train split strictly before t.

    `per_user` (the sampler's times are split ranks, see `sampler_rows`):
    train and eval instances draw among items with a train-split click, test
    instances among items with a train- or eval-split click. No time of
    another user is compared with t; the earlier splits stand for the past
    (the train split for itself, as it has none), the same reference splits
    as the candidate statistics (`item_stats.REFERENCE_SPLITS`).
    """
    if config.time_order == TIME_ORDER_GLOBAL:
        return t, split == "train"
    if split == "train":
        return None, True
    return SPLIT_RANK[split], False  # eval: rank < 1 (train); test: rank < 2


def sampler_rows(
    clicks: Iterable[tuple[tuple[str, ItemMeta], Sequence[ItemClick]]], time_order: str
) -> list[tuple[str, ItemMeta, int, int, int | None]]:
    """The `NegativeSampler` table from each target item's `(time, split)` clicks.

    `(item_id, item metadata, clicks, first, first_train)`: clicks over all splits
    (popularity, in both modes). `global`: `first` is the first click's time,
    `first_train` the first train-split click's time (None without one).
    `per_user`: `first` is the rank of the earliest split with a click
    (train 0, eval 1, test 2), `first_train` 0 with a train click, else None.
    """
    rows = []
    for (item, meta), item_clicks in clicks:
        if time_order == TIME_ORDER_GLOBAL:
            first = min(t for t, _ in item_clicks)
            train = [t for t, split in item_clicks if split == "train"]
            first_train = min(train) if train else None
        else:
            first = min(SPLIT_RANK[split] for _, split in item_clicks)
            first_train = 0 if any(split == "train" for _, split in item_clicks) else None
        rows.append((item, meta, len(item_clicks), first, first_train))
    return rows


@dataclasses.dataclass
class UserOutcome:
    instances: list[Instance]
    # Negatives that could not be drawn (eligible item pool too small), per split.
    negatives_short_by_split: dict[str, int]

    @property
    def negatives_short(self) -> int:
        return sum(self.negatives_short_by_split.values())


def make_instances(
    user: UserClicks, config: ConversionConfig, sampler: NegativeSampler, item_stats: ItemStats
) -> UserOutcome:
    """All instances of a kept user, in time order.

    Every target click at time t is a positive whose histories are the clicks
    strictly before t (most recent `max_seq_len`); it is followed by up to
    `num_negatives` negatives that share its histories and split, drawn by
    `negative_rule` among items the user never clicked. Every instance carries
    the statistics of its candidate (`item_stats`), which never count a click
    at or after t, and the attributes of its candidate (`ItemMeta`).
    """
    rng = user_rng(config.seed, user.user_id)
    clicked = {item for item, _, _ in user.target}
    splits = [split_of(p, len(user.target), t, config) for p, (_, t, _) in enumerate(user.target)]
    # The user's own clicks per item: per_user statistics discount those at or after t.
    own_clicks: dict[str, list[ItemClick]] = {}
    for (item, t, _), split in zip(user.target, splits, strict=True):
        own_clicks.setdefault(item, []).append((t, split))
    source_times = [e[1] for e in user.source]
    target_times = [e[1] for e in user.target]
    instances: list[Instance] = []
    short: dict[str, int] = {}
    for (item, t, meta), split in zip(user.target, splits, strict=True):
        src_items, src_cats = _history(user.source, source_times, t, config.max_seq_len)
        tgt_items, tgt_cats = _history(user.target, target_times, t, config.max_seq_len)
        candidates = [(item, meta, 1)]
        if config.num_negatives:
            before, train_only = negative_rule(split, t, config)
            negatives = sampler.sample(
                rng, clicked, config.num_negatives, before=before, train_only=train_only
            )
            if len(negatives) < config.num_negatives:
                short[split] = short.get(split, 0) + config.num_negatives - len(negatives)
            candidates.extend((neg, neg_meta, 0) for neg, neg_meta in negatives)
        for cand, cand_meta, label in candidates:
            stats = item_stats.candidate(cand, t, split, own_clicks.get(cand, ()))
            instances.append(
                Instance(
                    split=split,
                    user_id=user.user_id,
                    item_id=cand,
                    item_category=cand_meta.category,
                    source_items=src_items,
                    source_categories=src_cats,
                    target_items=tgt_items,
                    target_categories=tgt_cats,
                    label=label,
                    event_timestamp=t,
                    order=len(instances),
                    candidate_prior_clicks=stats.prior_clicks,
                    candidate_seen=stats.seen,
                    candidate_age=stats.age,
                    item_brand=cand_meta.brand,
                    item_price_bucket=cand_meta.price_bucket,
                    item_tags=cand_meta.tags,
                )
            )
    return UserOutcome(instances=instances, negatives_short_by_split=short)


def iter_target_items(
    user: UserClicks, config: ConversionConfig
) -> Iterator[tuple[tuple[str, ItemMeta], ItemClick]]:
    """`((item_id, item metadata), (time, split))` of each target click.

    The rows of the item table behind the negative sampler and the candidate
    statistics: the split tells which clicks make an item eligible as a
    negative of which split, and which clicks per_user mode counts.
    """
    count = len(user.target)
    for position, (item, t, meta) in enumerate(user.target):
        yield (item, meta), (t, split_of(position, count, t, config))
