"""A seeded synthetic cross-domain dataset with planted shared interests.

K latent interests are shared by both domains. Every item belongs to one
interest, and its category is the interest's name, so categories mean the
same thing in both domains (like genres of books and movies). Every user has
a sparse mixture of 1..`max_user_interests` interests with Dirichlet weights.
A user's interactions in either domain are drawn, without repeats, from

    p_u(i) = (1 - noise) * sum_k w_uk * p_k(i) + noise * p(i),

where p_k is a Zipf popularity over the items of interest k and p the
popularity over all items; so the source domain truly carries signal about
target clicks. Ratings are 4-5 (clicks) with probability `on_interest_click`
for items of the user's interests and uniform 1-5 otherwise, which exercises
the rating-threshold path of the converter.

Item attributes are correlated, so that feature-correlation methods (e.g.
correlated feature masking for self-supervised item towers) have something to
find: each category owns a few brands (brand determines category), a brand
has a typical price bucket, and an item's tags come mostly from its
category's own tags (`item_attributes`). They are drawn from a generator of
their own, so the interactions do not depend on them.

The generator writes format 2 (interactions + items TSV) and the dataset goes
through the same converter as real data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sitn_tf.data.config import ConversionConfig, DataError
from sitn_tf.data.item_meta import TAG_SEPARATOR  # the one the converter splits on

_GENRES = (
    "adventure", "biography", "comedy", "crime", "documentary", "drama",
    "fantasy", "history", "horror", "music", "mystery", "romance",
    "science", "science-fiction", "sports", "thriller", "travel", "war",
    "western", "animation", "cooking", "poetry", "religion", "self-help",
)  # fmt: skip

# Item attributes (see `item_attributes`).
BRANDS_PER_CATEGORY = 3
PRICE_BUCKETS = 5
TAGS_PER_CATEGORY = 4

INTERACTIONS_FILE = "interactions.tsv"
ITEMS_FILE = "items.tsv"
RAW_DIR = "raw"


def interest_name(interest: int) -> str:
    if interest < len(_GENRES):
        return _GENRES[interest]
    return f"genre-{interest:03d}"


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the synthetic dataset.

    The default (3,000 users, 1,000 items per domain) converts in well under a
    minute and lets the whole training pipeline run in minutes on 2 cores.
    """

    num_users: int = 3000
    num_interests: int = 12
    items_per_domain: int = 1000
    max_user_interests: int = 3
    source_interactions: tuple[int, int] = (6, 20)  # inclusive range per user
    target_interactions: tuple[int, int] = (3, 8)
    noise: float = 0.2
    on_interest_click: float = 0.9
    popularity_exponent: float = 0.8
    seed: int = 7
    source_domain: str = "books"
    target_domain: str = "movies"
    start_time: int = 1_420_070_400  # 2015-01-01 UTC
    span_days: int = 730
    user_active_days: int = 180

    def __post_init__(self) -> None:
        if self.num_users < 1:
            raise DataError(f"`num_users` must be >= 1, got {self.num_users}")
        if self.num_interests < 1:
            raise DataError(f"`num_interests` must be >= 1, got {self.num_interests}")
        if not 1 <= self.max_user_interests <= self.num_interests:
            raise DataError(
                f"`max_user_interests` must be in [1, num_interests], got {self.max_user_interests}"
            )
        for name in ("source_interactions", "target_interactions"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise DataError(f"`{name}` must be a range 1 <= low <= high, got {(low, high)}")
            if high > self.items_per_domain:
                raise DataError(
                    f"`{name}` upper bound {high} exceeds `items_per_domain` "
                    f"{self.items_per_domain}"
                )
        if self.items_per_domain < self.num_interests:
            raise DataError(
                "`items_per_domain` must be >= num_interests, got "
                f"{self.items_per_domain} < {self.num_interests}"
            )
        if not 0.0 <= self.noise <= 1.0:
            raise DataError(f"`noise` must be in [0, 1], got {self.noise}")
        if not 0.0 <= self.on_interest_click <= 1.0:
            raise DataError(f"`on_interest_click` must be in [0, 1], got {self.on_interest_click}")
        if self.source_domain == self.target_domain:
            raise DataError("`source_domain` and `target_domain` must differ")
        if self.user_active_days > self.span_days:
            raise DataError("`user_active_days` must be <= `span_days`")


@dataclasses.dataclass(frozen=True)
class SyntheticData:
    """Generated rows plus the ground truth behind them.

    Attributes:
      interactions: `(user_id, item_id, domain, timestamp, rating)` rows.
      items: `(item_id, domain, category, brand, title, price_bucket, tags)`
        rows; `tags` joined by `TAG_SEPARATOR`.
      item_interest: `(domain, item_id) -> interest index`.
      user_interests: `user_id -> {interest index: weight}`.
    """

    interactions: list[tuple[str, str, str, int, int]]
    items: list[tuple[str, str, str, str, str, str, str]]
    item_interest: dict[tuple[str, str], int]
    user_interests: dict[str, dict[int, float]]


def _item_id(domain_index: int, index: int) -> str:
    # Source ids look like ISBN-10 ASINs (leading zeros), target ids like
    # "B..." ASINs: the converter must keep both as strings.
    return f"{index:010d}" if domain_index == 0 else f"B{index:09d}"


def item_attributes(
    categories: np.ndarray, num_categories: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Brand, price bucket and tags of items, correlated with their category.

    * brand: one of the category's own `BRANDS_PER_CATEGORY` brands
      (`category * BRANDS_PER_CATEGORY + r`), so brand determines category;
    * price bucket (`0..PRICE_BUCKETS-1`): the brand's own bucket with
      probability 0.7, else uniform;
    * tags: 1-3 distinct tags, each one of the category's `TAGS_PER_CATEGORY`
      tags with probability 0.8, else any tag (ids `0..num_categories *
      TAGS_PER_CATEGORY - 1`).

    Args:
        categories: `(n,)` int category index of each item.
        num_categories: the number of categories.
        rng: the generator to draw from.

    Returns:
        `(brand, price_bucket, tags)`: two `(n,)` int arrays and per item a
        sorted list of tag ids.
    """
    categories = np.asarray(categories, dtype=np.int64)
    n = len(categories)
    brand = categories * BRANDS_PER_CATEGORY + rng.integers(0, BRANDS_PER_CATEGORY, n)
    brand_price = rng.integers(0, PRICE_BUCKETS, num_categories * BRANDS_PER_CATEGORY)
    price = np.where(rng.random(n) < 0.7, brand_price[brand], rng.integers(0, PRICE_BUCKETS, n))
    num_tags = num_categories * TAGS_PER_CATEGORY
    tags = []
    for category, count in zip(categories.tolist(), rng.integers(1, 4, n).tolist(), strict=True):
        own = category * TAGS_PER_CATEGORY + rng.integers(0, TAGS_PER_CATEGORY, count)
        chosen = np.where(rng.random(count) < 0.8, own, rng.integers(0, num_tags, count))
        tags.append(sorted(set(chosen.tolist())))
    return brand, price, tags


def generate_synthetic(config: SyntheticConfig = SyntheticConfig()) -> SyntheticData:
    """Generates the dataset; the same config always gives the same rows."""
    rng = np.random.default_rng(config.seed)
    k = config.num_interests
    n = config.items_per_domain
    domains = (config.source_domain, config.target_domain)

    items: list[tuple[str, str, str, str, str, str, str]] = []
    # Attributes from a generator of their own: the interactions stay the same.
    attribute_rng = np.random.default_rng([config.seed, 1])
    item_interest: dict[tuple[str, str], int] = {}
    interest_of: list[np.ndarray] = []
    within: list[np.ndarray] = []  # (k, n): p_k(i) per interest
    overall: list[np.ndarray] = []  # (n,): p(i)
    for d, domain in enumerate(domains):
        interests = rng.permutation(np.arange(n) % k)
        weights = np.empty(n)
        for interest in range(k):
            members = np.flatnonzero(interests == interest)
            ranks = rng.permutation(len(members))
            weights[members] = 1.0 / (ranks + 1.0) ** config.popularity_exponent
        p_k = np.zeros((k, n))
        p_k[interests, np.arange(n)] = weights
        p_k /= p_k.sum(axis=1, keepdims=True)
        interest_of.append(interests)
        within.append(p_k)
        overall.append(weights / weights.sum())
        brands, prices, tags = item_attributes(interests, k, attribute_rng)
        for index in range(n):
            item_id = _item_id(d, index)
            interest = int(interests[index])
            genre = interest_name(interest)
            item_interest[(domain, item_id)] = interest
            items.append(
                (
                    item_id,
                    domain,
                    genre,
                    f"{domain}-brand-{brands[index]:03d}",
                    f"{genre.title()} {domain} no. {index}",
                    str(prices[index]),
                    TAG_SEPARATOR.join(f"tag-{t:03d}" for t in tags[index]),
                )
            )

    interactions: list[tuple[str, str, str, int, int]] = []
    user_interests: dict[str, dict[int, float]] = {}
    width = len(str(config.num_users - 1))
    ranges = (config.source_interactions, config.target_interactions)
    day = 86_400
    for u in range(config.num_users):
        user_id = f"u{u:0{width}d}"
        count = int(rng.integers(1, config.max_user_interests + 1))
        mine = rng.choice(k, size=count, replace=False)
        mix = rng.dirichlet(np.ones(count))
        user_interests[user_id] = {int(i): float(w) for i, w in zip(mine, mix, strict=True)}
        begin = config.start_time + int(
            rng.integers(0, (config.span_days - config.user_active_days) * day + 1)
        )
        for d, domain in enumerate(domains):
            low, high = ranges[d]
            size = int(rng.integers(low, high + 1))
            p_u = (1.0 - config.noise) * (mix @ within[d][mine]) + config.noise * overall[d]
            picked = rng.choice(n, size=size, replace=False, p=p_u / p_u.sum())
            on_interest = np.isin(interest_of[d][picked], mine)
            liked = rng.random(size) < config.on_interest_click
            ratings = np.where(
                on_interest,
                np.where(liked, rng.integers(4, 6, size), rng.integers(1, 4, size)),
                rng.integers(1, 6, size),
            )
            times = begin + rng.integers(0, config.user_active_days * day, size)
            for index, rating, timestamp in zip(
                picked.tolist(), ratings.tolist(), times.tolist(), strict=True
            ):
                interactions.append((user_id, _item_id(d, index), domain, timestamp, rating))
    interactions.sort(key=lambda row: (row[0], row[3], row[2], row[1]))
    return SyntheticData(
        interactions=interactions,
        items=items,
        item_interest=item_interest,
        user_interests=user_interests,
    )


def write_synthetic_raw(data: SyntheticData, directory: str) -> tuple[str, str]:
    """Writes `interactions.tsv` and `items.tsv` (format 2) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    interactions_path = os.path.join(directory, INTERACTIONS_FILE)
    items_path = os.path.join(directory, ITEMS_FILE)
    with open(interactions_path, "w", encoding="utf-8") as out:
        out.write("user_id\titem_id\tdomain\ttimestamp\trating\n")
        for user, item, domain, timestamp, rating in data.interactions:
            out.write(f"{user}\t{item}\t{domain}\t{timestamp}\t{rating}\n")
    with open(items_path, "w", encoding="utf-8") as out:
        out.write("item_id\tdomain\tcategory\tbrand\ttitle\tprice_bucket\ttags\n")
        for row in data.items:
            out.write("\t".join(row) + "\n")
    return interactions_path, items_path


def prepare_synthetic_dataset(
    output_dir: str,
    synthetic: SyntheticConfig = SyntheticConfig(),
    *,
    conversion: dict[str, Any] | None = None,
    beam_args: Sequence[str] = (),
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generates raw data into `OUT/raw/` and converts it into `OUT/`.

    Args:
      output_dir: A local directory; receives `raw/`, `{train,eval,test}/`,
        `stats.json`.
      synthetic: Generator settings.
      conversion: Overrides of `ConversionConfig` fields (source and target
        come from `synthetic`).
      beam_args, overwrite, report: As in `convert_interactions`.

    Returns:
      The content of `OUT/stats.json`.
    """
    from sitn_tf.data.convert import convert_interactions, existing_dataset

    existing_dataset(output_dir, overwrite)  # fail before touching OUT/raw
    settings = {"num_shards": 2, **(conversion or {})}
    config = ConversionConfig(
        source=synthetic.source_domain, target=synthetic.target_domain, **settings
    )
    interactions, items = write_synthetic_raw(
        generate_synthetic(synthetic), os.path.join(output_dir, RAW_DIR)
    )
    stats = convert_interactions(
        interactions,
        output_dir,
        config,
        items=items,
        beam_args=beam_args,
        overwrite=overwrite,
        report=report,
    )
    return stats


def write_default_synthetic(
    output_dir: str,
    *,
    overwrite: bool = True,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Writes the embedded default dataset (what `make run` trains on)."""
    return prepare_synthetic_dataset(output_dir, overwrite=overwrite, report=report)
