"""Statistics of the candidate item that the converter writes with every instance.

Negatives are drawn only among items that were clicked before (see
`NegativeSampler`), so "never clicked before" predicts a click by
construction. Instead of leaving models to learn that from an accident of the
vocabulary (the out-of-vocabulary id), every instance states it: three int64
features of its candidate `item_id`, positives and negatives alike.

"Clicks" below are the target-domain clicks of the kept users after exact
repeats are dropped: the same clicks that become positives. An instance of
user u at time t in split s has candidate c.

`time_order="global"` (timestamps are times on one clock):

* `candidate_prior_clicks` = the number of clicks on c with time < t, by all
  kept users in all splits (u's own earlier clicks of c included). A click at
  t itself, the instance's own or another user's tied one, is never counted.
* `candidate_seen` = 1 if `candidate_prior_clicks` >= 1, else 0.
* `candidate_age` = t - (time of the first click on c), when seen; 0 when not
  seen. Times are integers and the first click is strictly before t, so a
  seen candidate has age >= 1: 0 means "not seen" without ambiguity.

`time_order="per_user"` (timestamps only order one user's clicks): no
statistic compares times across users. Without a shared clock, the splits
are the past of each other, in their order train < eval < test; the
reference splits of an instance are

  R(train) = {train},  R(eval) = {train},  R(test) = {train, eval}.

The train split has no earlier split, so a train instance counts the train
split as one period: every train click of the other users, and the user's own
train clicks strictly before t.

* `candidate_prior_clicks` = the number of clicks on c in the splits R(s), by
  all kept users, minus u's own clicks on c in R(s) with time >= t. That
  removes the instance's own click (a train click is in R(train)) and anything
  u did at or after it; u's own earlier clicks count, as in `global`.
* `candidate_seen` as in `global`.
* `candidate_age` = -1 for every instance: an age is a difference of times
  across users, which `per_user` declares meaningless. -1 means "unknown".

In both modes every negative has `candidate_seen` = 1: the negative rules
(`instances.negative_rule`) draw only items u never clicked with a click
among those counted. So only a positive can be "not seen".

Scaling: the table holds every click time of every target item: O(target
clicks) int64 values in one flat array (~100k clicks: under 1 MB), plus
O(target items) offsets, per-split counts and an id index. Like the negative
sampler's table it is gathered in one place and is the pipeline's side input;
before it is packed, the gathered `(time, split)` tuples cost about 100 bytes
per click in Python, so one worker's memory bounds the target clicks (a few
million fit in a few hundred MB). One statistic costs one binary search in the
candidate's own sorted times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from sitn_tf.data.config import SPLITS, TIME_ORDER_GLOBAL, TIME_ORDER_PER_USER, TIME_ORDERS

# (time, split) of one click on an item.
ItemClick = tuple[int, str]

# Per-user mode: the splits whose clicks an instance of a split may count.
REFERENCE_SPLITS = {"train": ("train",), "eval": ("train",), "test": ("train", "eval")}
UNKNOWN_AGE = -1


@dataclasses.dataclass(frozen=True)
class CandidateStats:
    """The three statistics of one instance's candidate (see the module docstring)."""

    prior_clicks: int
    seen: int
    age: int


class ItemStats:
    """Per target item: its click times (sorted) and its clicks per split.

    Stored as flat arrays (one run of times per item, found through
    `offsets`), not one array per item, so the side input stays a few
    objects however many items there are.

    Args:
      clicks: `(item_id, [(time, split), ...])`: every click of every target
        item, each item once.
      time_order: `global` or `per_user`: which definitions `candidate` uses.
    """

    def __init__(self, clicks: Iterable[tuple[str, Sequence[ItemClick]]], time_order: str) -> None:
        if time_order not in TIME_ORDERS:
            raise ValueError(f"unknown time_order {time_order!r}")
        self.time_order = time_order
        rows = sorted(clicks, key=lambda row: row[0])
        self._index: dict[str, int] = {}
        lengths = np.zeros(len(rows), dtype=np.int64)
        self._split_counts = np.zeros((len(rows), len(SPLITS)), dtype=np.int64)
        for i, (item, item_clicks) in enumerate(rows):
            if item in self._index:
                raise ValueError(f"item {item!r} is listed twice")
            self._index[item] = i
            lengths[i] = len(item_clicks)
            for _, split in item_clicks:
                self._split_counts[i, SPLITS.index(split)] += 1
        self._offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._offsets[1:])
        self._times = np.empty(int(self._offsets[-1]), dtype=np.int64)
        for i, (_, item_clicks) in enumerate(rows):
            start, end = self._offsets[i], self._offsets[i + 1]
            self._times[start:end] = np.sort(np.fromiter((t for t, _ in item_clicks), np.int64))

    def __len__(self) -> int:
        return len(self._index)

    def clicks_before(self, item: str, t: int) -> tuple[int, int | None]:
        """`(number of clicks on item with time < t, time of the first or None)`."""
        i = self._index.get(item)
        if i is None:
            return 0, None
        times = self._times[self._offsets[i] : self._offsets[i + 1]]
        count = int(np.searchsorted(times, t, side="left"))
        return count, (int(times[0]) if count else None)

    def split_clicks(self, item: str, splits: Sequence[str]) -> int:
        """The number of clicks on `item` in any of `splits`."""
        i = self._index.get(item)
        if i is None:
            return 0
        return int(sum(self._split_counts[i, SPLITS.index(s)] for s in splits))

    def candidate(
        self, item: str, t: int, split: str, own_clicks: Sequence[ItemClick]
    ) -> CandidateStats:
        """The statistics of candidate `item` for an instance at `t` in `split`.

        Args:
          item: The candidate.
          t: The instance's time.
          split: The instance's split.
          own_clicks: `(time, split)` of the instance user's own clicks on
            `item` (empty for a negative): per_user mode removes those at or
            after `t` from the count.
        """
        if self.time_order == TIME_ORDER_GLOBAL:
            prior, first = self.clicks_before(item, t)
            age = t - first if first is not None else 0
            return CandidateStats(prior_clicks=prior, seen=int(prior > 0), age=age)
        assert self.time_order == TIME_ORDER_PER_USER
        reference = REFERENCE_SPLITS[split]
        own_later = sum(1 for time, s in own_clicks if s in reference and time >= t)
        prior = self.split_clicks(item, reference) - own_later
        return CandidateStats(prior_clicks=prior, seen=int(prior > 0), age=UNKNOWN_AGE)
