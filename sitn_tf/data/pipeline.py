"""The Beam pipeline: raw lines -> per-user CTR instances -> TFRecord shards.

Graph (every step is distributed; only the target item table is gathered):

  input files -> ParseFiles (numbered lines -> clicks | metadata | rejects)
    -> [CoGroupByKey (domain, item) with metadata: attach each item's ItemMeta]
    -> GroupByKey user -> order, deduplicate, filter users
    -> kept users -> each target item's click times and splits
       -> NegativeSampler + ItemStats (side input)
    -> MakeInstances (histories strictly before t, seeded negatives, split,
       candidate statistics)
    -> GroupByKey (split, shard) -> sort by time -> one gzip TFRecord per shard

Counts that end up in `stats.json` flow through the pipeline as data
("tallies" merged by a CombineFn) so they are exact on every runner; the same
numbers are Beam counters for progress.

Outputs are written under `OUT/_staging/` and only moved into
`OUT/{train,eval,test}/` after the run passes its checks (reject threshold,
known domains, surviving users), so a failed run never leaves a dataset that
looks complete.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from sitn_tf.data import instances as inst
from sitn_tf.data import readers, tfrecord
from sitn_tf.data.config import ConversionConfig
from sitn_tf.data.item_meta import UNKNOWN_ITEM, ItemMeta
from sitn_tf.data.item_stats import ItemClick, ItemStats
from sitn_tf.files import dumps_json

COUNTER_NAMESPACE = "sitn_tf.data"
STAGING = "_staging"
REJECTS_DIR = "rejects"
REJECTS_FILE = "rejects.jsonl"
STATS_FILE = "stats.json"
TALLIES_FILE = "_tallies.json"

_TALLY = "tally"
_META = "meta"
_REJECT = "reject"
_ITEMS = "items"

_log = logging.getLogger(__name__)


def _group_of(kind: str) -> str:
    return "interactions" if kind in readers.INTERACTION_KINDS else "metadata"


class _TallyingDoFn(beam.DoFn):
    """A DoFn that counts into a per-bundle Counter.

    The counts leave once per bundle, both as a `tally` output (exact data for
    stats.json) and as Beam counters (progress), instead of one element per
    counted event.
    """

    def start_bundle(self) -> None:
        self._tally: collections.Counter[str] = collections.Counter()

    def finish_bundle(self) -> Iterator[Any]:
        if not self._tally:
            return
        for name, value in self._tally.items():
            Metrics.counter(COUNTER_NAMESPACE, name).inc(value)
        counts = dict(self._tally)
        self._tally = collections.Counter()
        yield beam.pvalue.TaggedOutput(
            _TALLY, WindowedValue(counts, MIN_TIMESTAMP, [GlobalWindow()])
        )


class _ParseFiles(_TallyingDoFn):
    """Reads one input file: emits clicks, metadata and rejects.

    Domain and click filters run here, while the counts are cheap to keep.
    Main output: `(user_id, domain, item_id, timestamp)` of each click in the
    source or target domain.
    """

    def __init__(self, config: ConversionConfig) -> None:
        self._config = config

    def process(self, input_file: readers.InputFile) -> Iterator[Any]:
        config = self._config
        kind = input_file.kind
        group = _group_of(kind)
        tally = self._tally
        roles = {config.source: "source", config.target: "target"}
        parse = readers.parser_for(input_file, config.category_level)
        lines = 0
        for line_number, raw in readers.read_numbered_lines(input_file):
            lines += 1
            if lines % 1_000_000 == 0:
                _log.info("read %d lines of %s", lines, input_file.path)
            if not raw.strip():
                tally[f"{group}/blank_lines"] += 1
                continue
            try:
                record = parse(readers.decode_line(raw))
            except readers.Reject as reject:
                tally[f"{group}/rejected/{reject.reason}"] += 1
                yield beam.pvalue.TaggedOutput(
                    _REJECT,
                    (
                        input_file.path,
                        line_number,
                        reject.reason,
                        reject.detail,
                        readers.reject_text(raw),
                    ),
                )
                continue
            if group == "metadata":
                (domain, _), _ = record
                if domain in roles:
                    tally["metadata/rows"] += 1
                    key, meta = record
                    yield beam.pvalue.TaggedOutput(_META, (key, _plain(meta)))
                else:
                    tally["metadata/other_domain"] += 1
                continue
            user, domain, item, timestamp, rating = record
            tally[f"interactions/by_domain/{domain}"] += 1
            role = roles.get(domain)
            if role is None:
                tally["interactions/dropped/other_domain"] += 1
            elif rating is not None and rating < config.click_min_rating:
                tally[f"interactions/dropped/not_a_click/{role}"] += 1
            else:
                tally[f"interactions/clicks/{role}"] += 1
                yield user, domain, item, timestamp
        tally[f"{group}/lines"] += lines
        _log.info("read %d lines from %s", lines, input_file.path)


def _plain(meta: ItemMeta) -> tuple[str, str, str, tuple[str, ...]]:
    """An `ItemMeta` as the plain tuple it is, for crossing a shuffle.

    Beam encodes plain tuples of strings natively; a NamedTuple falls back to
    pickling (about 3x slower per click) and, in a grouping key, to a
    deterministic fallback coder that logs a warning. `ItemMeta(*plain)` turns
    it back on the other side.
    """
    return tuple(meta)


def _choose_category(categories: Sequence[str]) -> str:
    """The most frequent non-empty category; ties go to the smallest name."""
    counts = collections.Counter(c for c in categories if c)
    if not counts:
        return ""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _choose_meta(records: Sequence[ItemMeta]) -> ItemMeta:
    """One record of an item described more than once.

    The category is chosen as before any other attribute was carried
    (`_choose_category`), so categories do not depend on brands or tags. Of
    the records with that category, the most frequent one wins; ties go to
    the one with more known attributes, then the smallest. A whole record is
    kept rather than a value per attribute, so brand, price and tags always
    come from one row of the input.
    """
    if not records:
        return UNKNOWN_ITEM
    category = _choose_category([r.category for r in records])
    counts = collections.Counter(r for r in records if r.category == category)
    return min(counts.items(), key=lambda kv: (-kv[1], -kv[0].known_attributes(), kv[0]))[0]


class _AttachCategories(_TallyingDoFn):
    """Joins clicks with item metadata (`ItemMeta`) on (domain, item_id).

    Output: `(user_id, (domain, item_id, timestamp, item_meta))`.
    """

    def __init__(self, config: ConversionConfig) -> None:
        self._roles = {config.source: "source", config.target: "target"}

    def process(self, element: Any) -> Iterator[Any]:
        (domain, item), grouped = element
        records = [ItemMeta(*r) for r in grouped[_META]]
        if len(records) > 1:
            self._tally["metadata/duplicate_items"] += 1
            if len({r.category for r in records}) > 1:
                self._tally["metadata/conflicting_items"] += 1
            elif len(set(records)) > 1:
                # Same category, other attributes differ: one record is kept
                # (`_choose_meta`); a counter, not in stats.json.
                self._tally["metadata/conflicting_attributes"] += 1
        meta = _choose_meta(records)
        clicked = False
        for user, timestamp in grouped["clicks"]:
            clicked = True
            yield user, (domain, item, timestamp, _plain(meta))
        if clicked:
            role = self._roles[domain]
            if not records:
                self._tally[f"items/without_metadata/{role}"] += 1
            elif not meta.category:
                self._tally[f"items/without_category/{role}"] += 1


class _FilterUsers(_TallyingDoFn):
    """Orders a user's clicks and applies the user filters."""

    def __init__(self, config: ConversionConfig) -> None:
        self._config = config

    def process(self, element: Any) -> Iterator[inst.UserClicks]:
        user_id, clicks = element
        user = inst.order_clicks(user_id, clicks, self._config)
        tally = self._tally
        tally["users/seen"] += 1
        tally["interactions/dropped/duplicate"] += user.duplicates
        reason = inst.drop_reason(user, self._config)
        if reason is not None:
            tally[f"users/dropped/{reason}"] += 1
            tally["interactions/dropped/user_filtered"] += len(user.source) + len(user.target)
            return
        tally["users/kept"] += 1
        tally["interactions/used"] += len(user.source) + len(user.target)
        yield user


class _ItemClicks(beam.CombineFn):
    """Per target item: its clicks `(time, split)`, sorted.

    The item table behind both the negative sampler (click counts, first
    click, first train-split click) and the candidate statistics (click times
    and splits). Concatenation then sorting gives the same result however the
    runner splits and merges.
    """

    def create_accumulator(self) -> list[ItemClick]:
        return []

    def add_input(self, accumulator: list[ItemClick], click: ItemClick) -> list[ItemClick]:
        accumulator.append(tuple(click))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[ItemClick]]) -> list[ItemClick]:
        merged: list[ItemClick] = []
        for accumulator in accumulators:
            merged.extend(accumulator)
        return merged

    def extract_output(self, accumulator: list[ItemClick]) -> tuple[ItemClick, ...]:
        return tuple(sorted(accumulator))


@dataclasses.dataclass(frozen=True)
class ItemTable:
    """The side input of `_MakeInstances`: negatives and candidate statistics."""

    sampler: inst.NegativeSampler
    stats: ItemStats


def _build_item_table(
    rows: Iterable[tuple[tuple[str, str], Sequence[ItemClick]]], config: ConversionConfig
) -> ItemTable | None:
    # Keys arrive as `(item_id, plain metadata tuple)` (`_target_clicks`).
    rows = [((item, ItemMeta(*meta)), clicks) for (item, meta), clicks in rows]
    if not rows:
        return None  # no kept user: no instance will ask for it
    return ItemTable(
        sampler=inst.NegativeSampler(
            inst.sampler_rows(rows, config.time_order), config.negative_sampling
        ),
        stats=ItemStats(((item, clicks) for (item, _), clicks in rows), config.time_order),
    )


def _target_clicks(user: inst.UserClicks, config: ConversionConfig) -> Iterator[Any]:
    """`inst.iter_target_items` with plain-tuple metadata in the key (`_plain`)."""
    for (item, meta), click in inst.iter_target_items(user, config):
        yield (item, _plain(meta)), click


class _MakeInstances(_TallyingDoFn):
    """Turns a kept user into serialized examples keyed by output shard.

    Main output: `((split, shard), (sort_key, example_bytes))`. The shard is
    a stable hash of the user id; the sort key orders a shard by time, then
    user, then the instance's place among the user's (positive before its
    negatives). Both depend only on the data, so the content and order of
    every shard are independent of how the runner splits work.
    """

    def __init__(self, config: ConversionConfig) -> None:
        self._config = config

    def process(self, user: inst.UserClicks, table: ItemTable) -> Iterator[Any]:
        config = self._config
        outcome = inst.make_instances(user, config, table.sampler, table.stats)
        user_hash = inst.stable_hash(user.user_id)
        shard = user_hash % config.num_shards
        tally = self._tally
        for split, short in outcome.negatives_short_by_split.items():
            tally["negatives/short"] += short
            tally[f"splits/{split}/negatives_short"] += short
        splits_seen: set[str] = set()
        items_seen: set[tuple[str, str]] = set()
        for instance in outcome.instances:
            split = instance.split
            splits_seen.add(split)
            tally[f"splits/{split}/instances"] += 1
            if instance.label:
                tally[f"splits/{split}/positives"] += 1
                if not instance.source_items:
                    tally[f"splits/{split}/positives_without_source_history"] += 1
            items_seen.add((split, instance.item_id))
            yield (
                (split, shard),
                (
                    (instance.event_timestamp, user_hash, instance.user_id, instance.order),
                    instance.to_example(),
                ),
            )
        for split in splits_seen:
            tally[f"splits/{split}/users"] += 1
        for pair in items_seen:
            yield beam.pvalue.TaggedOutput(_ITEMS, pair)


class _WriteShard(_TallyingDoFn):
    """Sorts one shard and writes it as a gzip TFRecord file."""

    def __init__(self, staging_dir: str, num_shards: int) -> None:
        self._staging_dir = staging_dir
        self._num_shards = num_shards

    def process(self, element: Any) -> Iterator[str]:
        (split, shard), keyed = element
        records = [record for _, record in sorted(keyed, key=lambda kv: kv[0])]
        path = FileSystems.join(
            self._staging_dir, split, tfrecord.shard_name(shard, self._num_shards)
        )
        tfrecord.write_shard(path, records)
        self._tally[f"files/{split}"] += 1
        yield path


class _MergeCounts(beam.CombineFn):
    def create_accumulator(self) -> collections.Counter[str]:
        return collections.Counter()

    def add_input(self, acc: collections.Counter[str], counts: dict[str, int]):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accumulators):
        merged: collections.Counter[str] = collections.Counter()
        for acc in accumulators:
            merged.update(acc)
        return merged

    def extract_output(self, acc: collections.Counter[str]) -> dict[str, int]:
        return dict(sorted(acc.items()))


def write_json(path: str, value: Any) -> None:
    with FileSystems.create(
        path, mime_type="application/json", compression_type=CompressionTypes.UNCOMPRESSED
    ) as out:
        # Stats keep their order of assembly (counts first, config last).
        out.write(dumps_json(value, sort_keys=False).encode("utf-8"))


def read_json(path: str) -> Any:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return json.loads(f.read().decode("utf-8"))


def _write_rejects(path: str, rejects: list[tuple[str, int, str, str, str]]) -> None:
    if not rejects:
        return
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as out:
        for file, line, reason, detail, text in sorted(rejects):
            row = {"file": file, "line": line, "reason": reason}
            if detail:
                row["detail"] = detail
            row["text"] = text
            out.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")


def _distinct_count(pairs: beam.PCollection, name: Callable[[Any], str], label: str):
    """Tallies `{name(key): number of distinct values}` for `(key, value)` pairs."""
    return (
        pairs
        | f"Distinct{label}" >> beam.Distinct()
        | f"Name{label}" >> beam.Map(lambda kv: name(kv[0]))
        | f"Count{label}" >> beam.combiners.Count.PerElement()
        | f"Tally{label}" >> beam.Map(lambda kv: {kv[0]: kv[1]})
    )


def build_pipeline(
    pipeline: beam.Pipeline,
    inputs: Sequence[readers.InputFile],
    config: ConversionConfig,
    output_dir: str,
) -> None:
    """Adds the conversion to `pipeline`; outputs land in `OUT/_staging/`."""
    staging = FileSystems.join(output_dir, STAGING)
    parsed = (
        pipeline
        | "Inputs" >> beam.Create(list(inputs))
        # One file per element: spread the files over workers before reading.
        | "SpreadFiles" >> beam.Reshuffle()
        | "ParseFiles"
        >> beam.ParDo(_ParseFiles(config)).with_outputs(_TALLY, _META, _REJECT, main="clicks")
    )
    tallies = [parsed[_TALLY]]
    # A single big file is read by one worker; fan its rows out again.
    clicks = parsed.clicks | "SpreadClicks" >> beam.Reshuffle()

    has_metadata = any(f.kind in readers.METADATA_KINDS for f in inputs)
    if has_metadata:
        joined = (
            {
                "clicks": clicks | "KeyByItem" >> beam.Map(lambda c: ((c[1], c[2]), (c[0], c[3]))),
                _META: parsed[_META],
            }
            | "JoinMetadata" >> beam.CoGroupByKey()
            | "AttachCategories"
            >> beam.ParDo(_AttachCategories(config)).with_outputs(_TALLY, main="clicks")
        )
        tallies.append(joined[_TALLY])
        user_clicks = joined.clicks
    else:
        user_clicks = clicks | "NoCategories" >> beam.Map(
            lambda c: (c[0], (c[1], c[2], c[3], _plain(UNKNOWN_ITEM)))
        )

    users = (
        user_clicks
        | "GroupByUser" >> beam.GroupByKey()
        | "FilterUsers" >> beam.ParDo(_FilterUsers(config)).with_outputs(_TALLY, main="kept")
    )
    tallies.append(users[_TALLY])
    kept = users.kept

    target_items = kept | "TargetClicks" >> beam.FlatMap(_target_clicks, config)
    item_table = (
        target_items
        | "ItemClicks" >> beam.CombinePerKey(_ItemClicks())
        # The target item table (not the interactions) is gathered in one
        # place: the negative sampler's support and the click times of the
        # candidate statistics, O(target clicks) (see `item_stats`).
        | "ItemTable" >> beam.combiners.ToList()
        | "BuildItemTable" >> beam.Map(_build_item_table, config)
    )
    made = kept | "MakeInstances" >> beam.ParDo(
        _MakeInstances(config), table=beam.pvalue.AsSingleton(item_table)
    ).with_outputs(_TALLY, _ITEMS, main="examples")
    tallies.append(made[_TALLY])

    written = (
        made.examples
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards"
        >> beam.ParDo(_WriteShard(staging, config.num_shards)).with_outputs(_TALLY, main="paths")
    )
    tallies.append(written[_TALLY])

    tallies.append(
        _distinct_count(made[_ITEMS], lambda split: f"splits/{split}/items", "SplitItems")
    )
    tallies.append(
        _distinct_count(
            kept | "SourceItems" >> beam.FlatMap(lambda u: (("source", e[0]) for e in u.source)),
            lambda role: f"items/{role}",
            "SourceItems",
        )
    )
    tallies.append(
        _distinct_count(
            # The item id alone: an item has one metadata record after the join.
            target_items | "TargetItemKeys" >> beam.Map(lambda ic: ("target", ic[0][0])),
            lambda role: f"items/{role}",
            "TargetItems",
        )
    )
    tallies.append(
        _distinct_count(
            kept
            | "Categories"
            >> beam.FlatMap(
                lambda u: (
                    ("categories", e[2].category) for e in u.source + u.target if e[2].category
                )
            ),
            lambda name: f"items/{name}",
            "Categories",
        )
    )

    if config.max_rejects_logged:
        rejects_path = FileSystems.join(output_dir, REJECTS_DIR, REJECTS_FILE)
        _ = (
            parsed[_REJECT]
            # The first rejects by (file, line): the same ones on every run.
            | "FirstRejects"
            >> beam.combiners.Top.Of(
                config.max_rejects_logged, key=lambda r: (r[0], r[1]), reverse=True
            )
            | "WriteRejects" >> beam.Map(lambda rows: _write_rejects(rejects_path, rows))
        )

    _ = (
        tallies
        | "AllTallies" >> beam.Flatten()
        | "MergeTallies" >> beam.CombineGlobally(_MergeCounts())
        | "WriteTallies"
        >> beam.Map(lambda counts: write_json(FileSystems.join(staging, TALLIES_FILE), counts))
    )
