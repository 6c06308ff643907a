"""Conversion settings shared by every input format.

`ConversionConfig` holds the rules of issue "raw interactions -> CTR
TFRecords": what counts as a click, which users survive, how instances,
negatives and splits are made, and how output is sharded. It is validated on
construction so that a bad flag fails before any Beam worker starts.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from sitn_tf.defaults import DEFAULT_MAX_SEQ_LEN

SPLITS = ("train", "eval", "test")
SPLIT_LEAVE_LAST_OUT = "leave_last_out"
SPLIT_TIME = "time"
SAMPLING_POPULARITY = "popularity"
SAMPLING_UNIFORM = "uniform"
TIME_ORDER_GLOBAL = "global"
TIME_ORDER_PER_USER = "per_user"
TIME_ORDERS = (TIME_ORDER_GLOBAL, TIME_ORDER_PER_USER)


class DataError(ValueError):
    """Bad input or a configuration that cannot produce a dataset.

    Raised with a message meant for the person running the converter: it names
    the file, line, flag or domain at fault.
    """


def parse_time(value: str | int | None, flag: str) -> int | None:
    """Parses a cut-off given as unix seconds or an ISO-8601 date/time (UTC).

    `2014-01-01` and `2014-01-01T12:00:00` are read as UTC unless they carry
    an offset; digits are unix seconds.
    """
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise DataError(
            f"`{flag}` must be unix seconds or an ISO date such as 2014-01-01, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp())


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    """Rules for turning clicks into time-ordered CTR instances.

    Attributes:
      source: Name of the source domain (its clicks only feed histories).
      target: Name of the target domain (its clicks become candidates).
      click_min_rating: A row with a rating is a click when rating >= this.
        Rows without a rating are always clicks.
      min_source_clicks: Users need at least this many source clicks (the
        paper's filter is 5).
      min_target_clicks: Users need at least this many target clicks; 2 is the
        least that gives one eval and one test instance.
      max_seq_len: Histories keep the most recent `max_seq_len` clicks.
      num_negatives: Negatives sampled per positive.
      negative_sampling: `popularity` (proportional to target-domain click
        counts of the kept users) or `uniform` over those items.
      seed: Seeds negative sampling; output is byte-identical for a seed.
      split: `leave_last_out` (per user: last target click -> test, second to
        last -> eval, rest -> train) or `time` (global cut-offs).
      time_order: What the timestamps mean. `global`: they are times on one
        clock shared by all users (dates), so clicks of different users can
        be compared. `per_user`: they only order one user's own clicks (e.g.
        positions 0, 1, 2, ... in the user's sequence). Every rule that would
        compare times across users then uses the splits instead:

        * negatives of a train instance are drawn among items with a click in
          the train split, of an eval instance among items with a click in
          the train split, of a test instance among items with a click in the
          train or eval split (in `global`: items clicked strictly before the
          instance's time t; train instances only items with a train-split
          click strictly before t);
        * the candidate statistics (`candidate_prior_clicks`,
          `candidate_seen`) count the candidate's clicks in the same
          reference splits (train for train and eval instances, train and
          eval for test instances), by all kept users, minus the instance
          user's own clicks at or after t; `candidate_age` is -1 (unknown);
        * `split="time"` is refused: its cut-offs are cross-user times.

        A negative is never an item the user clicked, in either mode. See
        `sitn_tf.data.item_stats` for the exact definitions.
      eval_start: With `split="time"`: instances at or after this unix time
        (and before `test_start`) go to eval.
      test_start: With `split="time"`: instances at or after this go to test.
      num_shards: Output files per split.
      max_reject_fraction: Fail when more than this fraction of the lines of
        any one input kind (interactions, metadata) is rejected.
      max_rejects_logged: How many rejected lines (the first by file and line)
        are written to `OUT/rejects/`.
      category_level: Which level of an Amazon category path names the
        category: 0 is the root (e.g. "Books"), 1 the level below it; a path
        shorter than that gives its deepest level; -1 always takes the deepest.
    """

    source: str
    target: str
    click_min_rating: float = 4.0
    min_source_clicks: int = 5
    min_target_clicks: int = 2
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    num_negatives: int = 4
    negative_sampling: str = SAMPLING_POPULARITY
    seed: int = 42
    split: str = SPLIT_LEAVE_LAST_OUT
    time_order: str = TIME_ORDER_GLOBAL
    eval_start: int | None = None
    test_start: int | None = None
    num_shards: int = 4
    max_reject_fraction: float = 0.01
    max_rejects_logged: int = 100
    category_level: int = 1

    def __post_init__(self) -> None:
        if not self.source or not self.target:
            raise DataError("`--source` and `--target` domains must be named")
        if self.source == self.target:
            raise DataError(f"`--source` and `--target` must differ, got {self.source!r} twice")
        if self.min_source_clicks < 1:
            raise DataError(f"`min_source_clicks` must be >= 1, got {self.min_source_clicks}")
        if self.min_target_clicks < 1:
            raise DataError(f"`min_target_clicks` must be >= 1, got {self.min_target_clicks}")
        if self.split == SPLIT_LEAVE_LAST_OUT and self.min_target_clicks < 2:
            raise DataError(
                "`min_target_clicks` must be >= 2 with leave-last-out splits "
                f"(one eval and one test click), got {self.min_target_clicks}"
            )
        if self.max_seq_len < 1:
            raise DataError(f"`max_seq_len` must be >= 1, got {self.max_seq_len}")
        if self.num_negatives < 0:
            raise DataError(f"`num_negatives` must be >= 0, got {self.num_negatives}")
        if self.negative_sampling not in (SAMPLING_POPULARITY, SAMPLING_UNIFORM):
            raise DataError(
                "`negative_sampling` must be 'popularity' or 'uniform', got "
                f"{self.negative_sampling!r}"
            )
        if self.time_order not in TIME_ORDERS:
            raise DataError(f"`time_order` must be 'global' or 'per_user', got {self.time_order!r}")
        if self.split == SPLIT_TIME and self.time_order == TIME_ORDER_PER_USER:
            raise DataError(
                "`--split time` cannot be used with `--time_order per_user`: its "
                "cut-offs compare timestamps across users, which per_user declares "
                "meaningless; use `--split leave_last_out`"
            )
        if self.split == SPLIT_TIME:
            if self.eval_start is None or self.test_start is None:
                raise DataError("`--split time` needs both `--eval_start` and `--test_start`")
            if self.eval_start > self.test_start:
                raise DataError(
                    "`eval_start` must be <= `test_start`, got "
                    f"{self.eval_start} > {self.test_start}"
                )
        elif self.split == SPLIT_LEAVE_LAST_OUT:
            if self.eval_start is not None or self.test_start is not None:
                raise DataError("`--eval_start`/`--test_start` only apply with `--split time`")
        else:
            raise DataError(f"`split` must be 'leave_last_out' or 'time', got {self.split!r}")
        if self.num_shards < 1:
            raise DataError(f"`num_shards` must be >= 1, got {self.num_shards}")
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            raise DataError(
                f"`max_reject_fraction` must be in [0, 1], got {self.max_reject_fraction}"
            )
        if self.max_rejects_logged < 0:
            raise DataError(f"`max_rejects_logged` must be >= 0, got {self.max_rejects_logged}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
