"""Item features of the retrievable corpus, for two-tower item towers.

Features, in the order the item tower reads them (`FEATURES`): the item id,
`category`, `brand`, `price_bucket` (single-valued) and `tags`
(multi-valued). Each value is an int, `0` meaning unknown (and padding for
`tags`); ids follow `sitn_tf.retrieval.data` (candidate ids `1..C-1`).

Two sources:

* `synthetic_item_features`: the attributes of
  `sitn_tf.data.synthetic.item_attributes` for the planted clusters of
  `data.synthetic` (category = cluster), so brand, price and tags are
  correlated the same way as in the project's synthetic `items.tsv`;
* `load_item_features`: an `items.tsv` of that format (`item_id, domain,
  category, brand, title, price_bucket, tags`, tags `|`-separated).
  The real Amazon sets have no item metadata: there only the id is used.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from sitn_tf.data import synthetic as synthetic_items

FEATURES = ("id", "category", "brand", "price_bucket", "tags")
SINGLE_VALUED = ("category", "brand", "price_bucket")
REQUIRED_COLUMNS = ("item_id", "domain")


@dataclasses.dataclass
class ItemFeatures:
    """Per candidate id: `columns[name]` `(C,)` int and `tags` `(C, max_tags)` int.

    `vocab[name]` is the number of values including 0 (unknown); `skipped`
    counts the rows of the source not used.
    """

    columns: dict[str, np.ndarray]
    tags: np.ndarray
    vocab: dict[str, int]
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def num_candidates(self) -> int:
        return len(self.tags)

    def table(self) -> dict[str, list]:
        """Feature name -> one value per candidate `1..C-1`, for `mutual_information`."""
        rows = range(1, self.num_candidates)
        out: dict[str, list] = {"id": list(rows)}
        for name in SINGLE_VALUED:
            out[name] = self.columns[name][1:].tolist()
        out["tags"] = [[t for t in self.tags[i].tolist() if t] for i in rows]
        return out


def _pack_tags(tags: list[list[int]], num_candidates: int) -> np.ndarray:
    width = max([len(t) for t in tags] + [1])
    packed = np.zeros((num_candidates, width), dtype=np.int32)
    for row, values in enumerate(tags):
        packed[row, : len(values)] = values
    return packed


def synthetic_item_features(item_cluster: np.ndarray, seed: int = 0) -> ItemFeatures:
    """Correlated attributes for `data.synthetic`'s items: category = planted cluster.

    Args:
        item_cluster: `(C,)` the cluster of each candidate id (entry 0 unused).
        seed: seed of the attribute draws.
    """
    clusters = np.asarray(item_cluster)[1:]
    num_categories = int(clusters.max()) + 1
    brand, price, tags = synthetic_items.item_attributes(
        clusters, num_categories, np.random.default_rng(seed)
    )
    c = len(clusters) + 1
    columns = {
        # +1 everywhere: 0 is "unknown".
        "category": np.concatenate([[0], clusters + 1]).astype(np.int32),
        "brand": np.concatenate([[0], brand + 1]).astype(np.int32),
        "price_bucket": np.concatenate([[0], price + 1]).astype(np.int32),
    }
    vocab = {
        "category": num_categories + 1,
        "brand": num_categories * synthetic_items.BRANDS_PER_CATEGORY + 1,
        "price_bucket": synthetic_items.PRICE_BUCKETS + 1,
        "tags": num_categories * synthetic_items.TAGS_PER_CATEGORY + 1,
    }
    packed = _pack_tags([[], *[[t + 1 for t in row] for row in tags]], c)
    return ItemFeatures(columns=columns, tags=packed, vocab=vocab)


def id_only_features(num_candidates: int) -> ItemFeatures:
    """No metadata (the real Amazon sets): every attribute unknown."""
    columns = {name: np.zeros(num_candidates, np.int32) for name in SINGLE_VALUED}
    vocab = {name: 1 for name in (*SINGLE_VALUED, "tags")}
    return ItemFeatures(columns, np.zeros((num_candidates, 1), np.int32), vocab)


def load_item_features(path: str | Path, item_ids: dict[str, int], domain: str) -> ItemFeatures:
    """Attributes of the candidates from an `items.tsv` (see the module docstring).

    Args:
        path: the TSV, with a header naming at least `item_id` and `domain`;
            `category`, `brand`, `price_bucket` and `tags` are read when
            present (unknown otherwise).
        item_ids: item id string -> candidate id (`Sequences.item_ids`).
        domain: only rows of this domain are used.

    Returns:
        `ItemFeatures`; `skipped` counts `domain_<name>` (other domains),
        `not_in_interactions` (rows of items never clicked) and
        `candidates_without_row` (candidates the file does not describe; all
        their attributes are unknown).

    Raises:
        ValueError: naming the file and line, for a header without the
            required columns, a row with the wrong number of fields, an empty
            `item_id`, or an item described twice.
    """
    path = Path(path)
    num_candidates = len(item_ids) + 1
    skipped: Counter = Counter()
    values: dict[str, dict[str, int]] = {name: {} for name in (*SINGLE_VALUED, "tags")}
    columns = {name: np.zeros(num_candidates, np.int32) for name in SINGLE_VALUED}
    tags: list[list[int]] = [[] for _ in range(num_candidates)]
    seen: dict[int, int] = {}
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}:1: the header lacks the columns {missing}; got {header!r}.")
        for line_number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}:{line_number}: expected {len(header)} tab-separated fields, "
                    f"got {len(fields)}."
                )
            row = dict(zip(header, fields, strict=True))
            if not row["item_id"]:
                raise ValueError(f"{path}:{line_number}: empty item_id.")
            if row["domain"] != domain:
                skipped[f"domain_{row['domain']}"] += 1
                continue
            item = item_ids.get(row["item_id"])
            if item is None:
                skipped["not_in_interactions"] += 1
                continue
            if item in seen:
                raise ValueError(
                    f"{path}:{line_number}: item {row['item_id']!r} already described "
                    f"on line {seen[item]}."
                )
            seen[item] = line_number
            for name in SINGLE_VALUED:
                value = row.get(name, "")
                if value:  # empty = unknown (0)
                    columns[name][item] = values[name].setdefault(value, len(values[name]) + 1)
            for tag in sorted(set(filter(None, row.get("tags", "").split("|")))):
                tags[item].append(values["tags"].setdefault(tag, len(values["tags"]) + 1))
    without = num_candidates - 1 - len(seen)
    if without:
        skipped["candidates_without_row"] = without
    vocab = {name: len(v) + 1 for name, v in values.items()}
    return ItemFeatures(columns, _pack_tags(tags, num_candidates), vocab, dict(skipped))
