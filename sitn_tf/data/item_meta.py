"""The metadata of one item, as the converter carries it from input to example.

Metadata rows (items.tsv, Amazon metadata) are joined with the clicks on
`(domain, item_id)`; every click then carries its item's `ItemMeta`. The
category of every click becomes the history categories; brand, price bucket
and tags are written only for the candidate `item_id` of each example
(`item_brand`, `item_price_bucket`, `item_tags`).

"" (or no tags) means unknown: the input had no such column or field, or the
value was empty.
"""

from __future__ import annotations

from typing import NamedTuple

# Tags in an items table are one cell, joined by this separator.
TAG_SEPARATOR = "|"


class ItemMeta(NamedTuple):
    """What the converter knows about an item; "" / () when unknown.

    A NamedTuple, so it compares, hashes and sorts like the plain tuple it is
    (the converter sorts and deduplicates clicks that carry it).
    """

    category: str = ""
    brand: str = ""
    price_bucket: str = ""
    tags: tuple[str, ...] = ()

    def known_attributes(self) -> int:
        """How many of brand, price bucket and tags are known (0-3)."""
        return bool(self.brand) + bool(self.price_bucket) + bool(self.tags)


UNKNOWN_ITEM = ItemMeta()


def split_tags(cell: str) -> tuple[str, ...]:
    """The tags of a `|`-separated cell: stripped, empty ones and repeats left out.

    A repeated tag says nothing more than the first; the first occurrence
    keeps its place, so the order of the input is kept.
    """
    tags: dict[str, None] = {}
    for tag in cell.split(TAG_SEPARATOR):
        tag = tag.strip()
        if tag:
            tags.setdefault(tag, None)
    return tuple(tags)
