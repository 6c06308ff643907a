"""End-to-end conversion on small fixtures written by the tests.

One hand-made population of users is written in every supported format (TSV,
gzip CSV with reordered columns, Amazon 2018, Amazon 2014 with Python-literal
metadata); the outputs are checked against an independent reference and must
be byte-identical across formats and across runs.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import random

import pytest

from sitn_tf import features as F
from sitn_tf.data import convert_amazon, convert_interactions, tfrecord
from sitn_tf.data.config import SPLITS, ConversionConfig, DataError
from sitn_tf.data.item_meta import ItemMeta
from sitn_tf.data.pipeline import _choose_meta, _ItemClicks
from sitn_tf.data.reading import decode_example, read_split, split_files

SOURCE, TARGET = "books", "movies"
GENRES = ("Fantasy", "Mystery", "History", "Science")
LEADING_ZERO_MOVIE = "0001234567"


def _population(seed: int = 3):
    """Rows `(user, item, domain, timestamp, rating)` and item categories.

    Timestamps are distinct per user (so the expected order is unique) and no
    user clicks an item twice in a domain (so each history item has one time).
    """
    rng = random.Random(seed)
    books = [f"{i:010d}" for i in range(1, 60)]  # ISBN-like: leading zeros
    movies = [f"B{i:09d}" for i in range(1, 40)] + [LEADING_ZERO_MOVIE]
    categories = {}
    for domain, items in ((SOURCE, books), (TARGET, movies)):
        for index, item in enumerate(items):
            if index % 11 == 5:
                continue  # no metadata at all
            categories[(domain, item)] = "" if index % 13 == 7 else rng.choice(GENRES)
    rows = []
    plan = [(rng.randint(5, 9), rng.randint(2, 6)) for _ in range(30)]
    plan += [(3, 4), (4, 3), (8, 0), (7, 1), (0, 3)]  # dropped users
    for u, (n_books, n_movies) in enumerate(plan):
        user = f"A{u:03d}X"
        times = rng.sample(range(1_300_000_000, 1_300_000_000 + 10_000), 40)
        picks = rng.sample(books, n_books) + rng.sample(movies, n_movies)
        if u == 0:
            picks[-1] = LEADING_ZERO_MOVIE if LEADING_ZERO_MOVIE not in picks else picks[-1]
        for k, item in enumerate(picks):
            domain = SOURCE if k < n_books else TARGET
            rows.append((user, item, domain, times[k], rng.choice((4, 5))))
        # Non-clicks: low ratings, items never clicked by this user.
        rows.append((user, movies[(u * 7) % 40], TARGET, times[30], 2))
        rows.append((user, books[(u * 5) % 59], SOURCE, times[31], 1))
    rows.append(rows[0])  # an exact duplicate
    rows += [("A000X", "M1", "music", 1_300_000_001, 5), ("Z9", "M2", "music", 5, 4)]
    return rows, categories


def _clicks_without_repeats(rows):
    """Drops non-clicks whose item the user also clicked (keeps the fixture's
    one-time-per-item property simple for the reference)."""
    clicked = {(u, i, d) for u, i, d, _, r in rows if r >= 4}
    return [row for row in rows if row[4] >= 4 or (row[0], row[1], row[2]) not in clicked]


ROWS, CATEGORIES = _population()
ROWS = _clicks_without_repeats(ROWS)
# Brands of the items with metadata, some unknown; every input format can
# state a brand (Amazon's `brand`, the items table's column), so all formats
# still give the same bytes.
BRANDS = {
    key: "" if index % 5 == 2 else f"Brand {index % 4}"
    for index, key in enumerate(sorted(CATEGORIES))
}


def _write_tsv(directory):
    interactions = os.path.join(directory, "interactions.tsv")
    with open(interactions, "w") as f:
        f.write("user_id\titem_id\tdomain\ttimestamp\trating\n")
        for user, item, domain, ts, rating in ROWS:
            f.write(f"{user}\t{item}\t{domain}\t{ts}\t{rating}\n")
    items = os.path.join(directory, "items.tsv")
    with open(items, "w") as f:
        f.write("item_id\tdomain\tcategory\tbrand\n")
        for (domain, item), category in sorted(CATEGORIES.items()):
            f.write(f"{item}\t{domain}\t{category}\t{BRANDS[(domain, item)]}\n")
    return interactions, items


def _write_csv_gz(directory):
    # Reordered columns, quoted cells, gzip without a telling extension.
    interactions = os.path.join(directory, "interactions.csv.gz")
    with gzip.open(interactions, "wt") as f:
        f.write("timestamp,rating,domain,user_id,item_id\n")
        for user, item, domain, ts, rating in ROWS:
            f.write(f'{ts},{rating}.0,{domain},"{user}",{item}\n')
    items = os.path.join(directory, "items.csv")
    with open(items, "w") as f:
        f.write("domain,item_id,title,brand,category\n")
        for (domain, item), category in sorted(CATEGORIES.items()):
            brand = BRANDS[(domain, item)]
            f.write(f'{domain},{item},"A title, with a comma",{brand},{category}\n')
    return interactions, items


def _write_amazon(directory, release):
    reviews, meta = {}, {}
    for domain, name in ((SOURCE, "Books"), (TARGET, "Movies_and_TV")):
        review_path = os.path.join(directory, f"{name}.json" + (".gz" if domain == TARGET else ""))
        opener = gzip.open if review_path.endswith(".gz") else open
        with opener(review_path, "wt") as f:
            for user, item, row_domain, ts, rating in ROWS:
                if row_domain == domain:
                    review = {"reviewerID": user, "asin": item, "overall": float(rating)}
                    review["unixReviewTime"] = ts
                    review["reviewText"] = "great"
                    f.write(json.dumps(review) + "\n")
        meta_path = os.path.join(directory, f"meta_{name}.json.gz")
        with gzip.open(meta_path, "wt") as f:
            for (item_domain, item), category in sorted(CATEGORIES.items()):
                if item_domain != domain:
                    continue
                if release == 2018:
                    record = {"asin": item, "title": "t", "brand": BRANDS[(item_domain, item)]}
                    record["category"] = [name, category] if category else []
                    record["main_cat"] = ""
                    f.write(json.dumps(record) + "\n")
                else:  # 2014: Python literals, nested category paths
                    record = {"asin": item, "salesRank": {name: 1}}
                    record["categories"] = [[name.replace("_", " "), category]] if category else []
                    if BRANDS[(item_domain, item)]:
                        record["brand"] = BRANDS[(item_domain, item)]
                    f.write(repr(record) + "\n")
        reviews[domain], meta[domain] = review_path, meta_path
    return reviews, meta


CONFIG = ConversionConfig(source=SOURCE, target=TARGET, num_shards=3)


def _shard_bytes(output_dir):
    return {
        split: [open(path, "rb").read() for path in split_files(output_dir, split)]
        for split in SPLITS
    }


def _examples(output_dir):
    return {split: list(read_split(output_dir, split)) for split in SPLITS}


@pytest.fixture(scope="module")
def tsv_run(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tsv"))
    interactions, items = _write_tsv(directory)
    out = os.path.join(directory, "out")
    stats = convert_interactions(interactions, out, CONFIG, items=items)
    return {"dir": directory, "out": out, "stats": stats, "examples": _examples(out)}


# --------------------------------------------------------------------------
# Independent reference of what the converter must produce.


def _reference():
    clicks = collections.defaultdict(lambda: {SOURCE: {}, TARGET: {}})
    for user, item, domain, ts, rating in ROWS:
        if domain in (SOURCE, TARGET) and rating >= 4:
            clicks[user][domain][item] = ts
    kept = {
        user: by_domain
        for user, by_domain in clicks.items()
        if len(by_domain[SOURCE]) >= 5 and len(by_domain[TARGET]) >= 2
    }
    positives = {}
    for user, by_domain in kept.items():
        target = sorted(by_domain[TARGET].items(), key=lambda kv: kv[1])
        source = sorted(by_domain[SOURCE].items(), key=lambda kv: kv[1])
        for position, (item, ts) in enumerate(target):
            split = "test" if position == len(target) - 1 else "eval"
            split = split if position >= len(target) - 2 else "train"
            positives[(user, item)] = {
                "split": split,
                "ts": ts,
                "source": [i for i, t in source if t < ts],
                "target": [i for i, t in target if t < ts],
            }
    return clicks, kept, positives


def _category(domain, item):
    return CATEGORIES.get((domain, item), "")


def _check_item_attributes(ex):
    """The candidate's brand from the fixture; it states no price or tags."""
    assert ex[F.ITEM_BRAND] == BRANDS.get((TARGET, ex[F.ITEM_ID]), "")
    assert ex[F.ITEM_PRICE_BUCKET] == ""
    assert ex[F.ITEM_TAGS] == []


def test_positives_and_histories_match_the_reference(tsv_run):
    _, _, expected = _reference()
    seen = {}
    for split, examples in tsv_run["examples"].items():
        for ex in examples:
            if ex[F.LABEL] == 1:
                seen[(ex[F.USER_ID], ex[F.ITEM_ID])] = (split, ex)
    assert set(seen) == set(expected)
    for key, (split, ex) in seen.items():
        want = expected[key]
        assert split == want["split"]
        assert ex[F.EVENT_TIMESTAMP] == want["ts"]
        assert ex[F.SOURCE_ITEM_IDS] == want["source"]
        assert ex[F.TARGET_ITEM_IDS] == want["target"]
        assert ex[F.ITEM_CATEGORY] == _category(TARGET, key[1])
        assert ex[F.SOURCE_CATEGORIES] == [_category(SOURCE, i) for i in want["source"]]
        assert ex[F.TARGET_CATEGORIES] == [_category(TARGET, i) for i in want["target"]]
        _check_item_attributes(ex)


def test_no_history_item_is_at_or_after_the_instance(tsv_run):
    clicks, _, _ = _reference()
    checked = 0
    for examples in tsv_run["examples"].values():
        for ex in examples:
            times = clicks[ex[F.USER_ID]]
            for item in ex[F.SOURCE_ITEM_IDS]:
                assert times[SOURCE][item] < ex[F.EVENT_TIMESTAMP]
                checked += 1
            for item in ex[F.TARGET_ITEM_IDS]:
                assert times[TARGET][item] < ex[F.EVENT_TIMESTAMP]
                checked += 1
    assert checked > 1000


def test_negatives_are_never_clicked_and_share_the_positive_context(tsv_run):
    clicks, kept, _ = _reference()
    first_click = {}
    for by_domain in kept.values():
        for item, ts in by_domain[TARGET].items():
            first_click[item] = min(ts, first_click.get(item, ts))
    short = 0
    for examples in tsv_run["examples"].values():
        groups = collections.defaultdict(list)
        for ex in examples:
            groups[(ex[F.USER_ID], ex[F.EVENT_TIMESTAMP])].append(ex)
        for (user, ts), group in groups.items():
            positives = [ex for ex in group if ex[F.LABEL] == 1]
            negatives = [ex for ex in group if ex[F.LABEL] == 0]
            assert len(positives) == 1 and len(negatives) <= CONFIG.num_negatives
            short += CONFIG.num_negatives - len(negatives)
            assert len({ex[F.ITEM_ID] for ex in negatives}) == len(negatives)
            for ex in negatives:
                assert ex[F.ITEM_ID] not in clicks[user][TARGET]
                # Only items some kept user clicked strictly earlier: no future items.
                assert first_click[ex[F.ITEM_ID]] < ts
                assert ex[F.ITEM_CATEGORY] == _category(TARGET, ex[F.ITEM_ID])
                _check_item_attributes(ex)
                for name in F.SEQUENCE_FEATURES:
                    assert ex[name] == positives[0][name]
    # Shortfalls (early instances, when few items existed yet) are counted, not hidden.
    assert short == tsv_run["stats"]["negatives_short"]


def test_train_negatives_have_a_train_split_click_before_them(tsv_run):
    """The model's vocabulary is the train split's: train negatives must be in it.

    Computed from the written files alone: an item's first train-split click
    is the earliest train positive with that item.
    """
    first_train, first_any = {}, {}
    for split, examples in tsv_run["examples"].items():
        for ex in examples:
            if ex[F.LABEL] == 1:
                item, ts = ex[F.ITEM_ID], ex[F.EVENT_TIMESTAMP]
                first_any[item] = min(ts, first_any.get(item, ts))
                if split == "train":
                    first_train[item] = min(ts, first_train.get(item, ts))
    checked = excluded_by_rule = 0
    short = collections.Counter()
    for split, examples in tsv_run["examples"].items():
        by_positive = collections.Counter()
        for ex in examples:
            key = (ex[F.USER_ID], ex[F.EVENT_TIMESTAMP])
            if ex[F.LABEL] == 1:
                by_positive[key] += 0
                continue
            by_positive[key] += 1
            if split == "train":
                ts = ex[F.EVENT_TIMESTAMP]
                assert first_train.get(ex[F.ITEM_ID], ts) < ts, ex
                checked += 1
        short[split] = sum(CONFIG.num_negatives - n for n in by_positive.values())
        if split == "train":
            # Items the old any-split rule allowed here that the train rule excludes.
            excluded_by_rule = sum(
                1
                for _, ts in by_positive
                for item, first in first_any.items()
                if first < ts and not first_train.get(item, ts) < ts
            )
    assert checked > 100
    assert excluded_by_rule > 0  # the fixture exercises the difference
    for split in SPLITS:
        assert tsv_run["stats"]["splits"][split]["negatives_short"] == short[split]


def test_each_users_test_is_after_eval_is_after_train(tsv_run):
    times = collections.defaultdict(dict)
    for split, examples in tsv_run["examples"].items():
        for ex in examples:
            times[ex[F.USER_ID]].setdefault(split, set()).add(ex[F.EVENT_TIMESTAMP])
    _, kept, _ = _reference()
    assert set(times) == set(kept)
    for user_times in times.values():
        assert len(user_times["test"]) == 1 and len(user_times["eval"]) == 1
        assert max(user_times.get("train", {0})) < min(user_times["eval"])
        assert max(user_times["eval"]) < min(user_times["test"])


def test_shards_are_time_ordered_and_users_stay_in_one_shard(tsv_run):
    shard_of = {}
    for split in SPLITS:
        for path in split_files(tsv_run["out"], split):
            examples = [decode_example(r) for r in tfrecord.read_records(path)]
            times = [ex[F.EVENT_TIMESTAMP] for ex in examples]
            assert times == sorted(times)
            for ex in examples:
                assert shard_of.setdefault(ex[F.USER_ID], os.path.basename(path)) == (
                    os.path.basename(path)
                )


def test_ids_with_leading_zeros_survive_as_strings(tsv_run):
    items = {ex[F.ITEM_ID] for exs in tsv_run["examples"].values() for ex in exs}
    history = {
        i for exs in tsv_run["examples"].values() for ex in exs for i in ex[F.SOURCE_ITEM_IDS]
    }
    assert LEADING_ZERO_MOVIE in items
    assert any(i.startswith("000") and len(i) == 10 for i in history)


def test_stats_account_for_every_row_and_match_the_output(tsv_run):
    stats = tsv_run["stats"]
    assert stats["status"] == "ok"
    rows = stats["rows"]["interactions"]
    assert rows["lines"] == len(ROWS)
    assert rows["lines"] == sum(rows["dropped"].values()) + rows["used"]
    assert rows["dropped"]["duplicate"] == 1
    assert rows["dropped"]["other_domain"] == 2
    assert rows["dropped"]["not_a_click"] == sum(1 for r in ROWS if r[4] < 4 and r[2] != "music")
    assert rows["rows_by_domain"] == {
        d: n for d, n in collections.Counter(r[2] for r in ROWS).most_common()
    }
    assert stats["users"]["dropped"] == {
        "no_source_clicks": 1,
        "no_target_clicks": 1,
        "too_few_source_clicks": 2,
        "too_few_target_clicks": 1,
    }
    assert stats["users"]["kept"] == 30
    for split, examples in tsv_run["examples"].items():
        counts = stats["splits"][split]
        assert counts["instances"] == len(examples)
        assert counts["positives"] == sum(ex[F.LABEL] for ex in examples)
        assert counts["negatives"] == counts["instances"] - counts["positives"]
        assert counts["users"] == len({ex[F.USER_ID] for ex in examples})
        assert counts["items"] == len({ex[F.ITEM_ID] for ex in examples})
    assert stats["items"]["categories"] == len(GENRES)
    assert stats["rows"]["metadata"]["items"] == len(CATEGORIES)
    on_disk = json.load(open(os.path.join(tsv_run["out"], "stats.json")))
    assert on_disk == stats
    assert not os.path.exists(os.path.join(tsv_run["out"], "rejects"))
    assert sorted(os.listdir(tsv_run["out"])) == ["eval", "stats.json", "test", "train"]


@pytest.mark.parametrize("variant", ["csv_gz", "amazon_2018", "amazon_2014"])
def test_every_format_gives_byte_identical_shards(tsv_run, variant, tmp_path):
    directory, out = str(tmp_path), str(tmp_path / "out")
    if variant == "csv_gz":
        interactions, items = _write_csv_gz(directory)
        convert_interactions(interactions, out, CONFIG, items=items)
    else:
        reviews, meta = _write_amazon(directory, 2018 if variant == "amazon_2018" else 2014)
        stats = convert_amazon(reviews, out, CONFIG, metadata=meta)
        assert stats["rows"]["metadata"]["rejected"] == 0
    assert _shard_bytes(out) == _shard_bytes(tsv_run["out"])


def test_seeded_output_is_byte_identical_across_runs_and_parallelism(tsv_run, tmp_path):
    interactions, items = os.path.join(tsv_run["dir"], "interactions.tsv"), None
    items = os.path.join(tsv_run["dir"], "items.tsv")
    out = str(tmp_path / "again")
    convert_interactions(
        interactions,
        out,
        CONFIG,
        items=items,
        beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
    )
    first = _shard_bytes(tsv_run["out"])
    assert _shard_bytes(out) == first
    assert sum(len(shards) for shards in first.values()) == 3 * CONFIG.num_shards
    other = ConversionConfig(source=SOURCE, target=TARGET, num_shards=3, seed=7)
    out_seed = str(tmp_path / "seed7")
    convert_interactions(interactions, out_seed, other, items=items)
    assert _shard_bytes(out_seed) != first


def test_time_split_uses_global_cutoffs(tsv_run, tmp_path):
    times = sorted(r[3] for r in ROWS if r[2] == TARGET)
    eval_start, test_start = times[len(times) // 2], times[3 * len(times) // 4]
    config = ConversionConfig(
        source=SOURCE, target=TARGET, split="time", eval_start=eval_start, test_start=test_start
    )
    out = str(tmp_path / "time")
    stats = convert_interactions(os.path.join(tsv_run["dir"], "interactions.tsv"), out, config)
    for split, examples in _examples(out).items():
        assert examples, split
        for ex in examples:
            t = ex[F.EVENT_TIMESTAMP]
            assert {"train": t < eval_start, "eval": eval_start <= t < test_start}.get(
                split, t >= test_start
            )
    assert stats["config"]["split"] == "time"
    assert stats["items"]["categories"] == 0  # no items file given


def test_item_clicks_combiner_is_independent_of_how_clicks_are_split():
    combine = _ItemClicks()
    clicks = [(50, "eval"), (30, "train"), (20, "test"), (40, "train"), (20, "train")]

    def combined(parts):
        accumulators = []
        for part in parts:
            acc = combine.create_accumulator()
            for click in part:
                acc = combine.add_input(acc, click)
            accumulators.append(acc)
        return combine.extract_output(combine.merge_accumulators(accumulators))

    want = tuple(sorted(clicks))
    assert combined([clicks]) == want
    assert combined([clicks[:2], [], clicks[2:]]) == want
    assert combined([[c] for c in reversed(clicks)]) == want


# --------------------------------------------------------------------------
# Bad input.


def _write_with_bad_lines(directory):
    interactions, items = _write_tsv(directory)
    lines = open(interactions).read().splitlines(keepends=True)
    bad = {
        5: "A001X\t0000000001\tbooks\tyesterday\t5\n",
        9: "A001X\t0000000002\tbooks\n",
        14: "\t0000000003\tbooks\t1300000000\t5\n",
    }
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    with open(interactions, "w") as f:
        f.write("".join(lines))
    return interactions, items, bad


def test_rejected_lines_are_counted_and_logged_with_file_and_line(tmp_path):
    interactions, items, bad = _write_with_bad_lines(str(tmp_path))
    out = str(tmp_path / "out")
    stats = convert_interactions(interactions, out, CONFIG, items=items)
    rows = stats["rows"]["interactions"]
    assert rows["rejected_by_reason"] == {
        "bad_timestamp": 1,
        "wrong_column_count": 1,
        "missing_field": 1,
    }
    logged = [json.loads(line) for line in open(os.path.join(out, "rejects", "rejects.jsonl"))]
    assert [(r["file"], r["line"], r["reason"]) for r in logged] == [
        (interactions, 5, "bad_timestamp"),
        (interactions, 9, "wrong_column_count"),
        (interactions, 14, "missing_field"),
    ]
    assert [r["text"] + "\n" for r in logged] == [bad[n] for n in sorted(bad)]
    assert rows["lines"] == sum(rows["dropped"].values()) + rows["used"]


def test_timestamps_beyond_int64_or_negative_are_rejected_per_line(tmp_path):
    # A target-domain timestamp beyond int64 used to crash the writer
    # (`ValueError: Value out of range` in `to_example`); -5 passed silently.
    interactions, items = _write_tsv(str(tmp_path))
    with open(interactions, "a") as f:
        f.write(f"{ROWS[0][0]}\tZ000000001\t{TARGET}\t99999999999999999999\t5\n")
        f.write(f"{ROWS[0][0]}\t0000000009\t{SOURCE}\t-5\t5\n")
    lines = len(open(interactions).read().splitlines())
    out = str(tmp_path / "out")
    stats = convert_interactions(interactions, out, CONFIG, items=items)
    assert stats["status"] == "ok"
    assert stats["rows"]["interactions"]["rejected_by_reason"] == {"bad_timestamp": 2}
    logged = [json.loads(line) for line in open(os.path.join(out, "rejects", "rejects.jsonl"))]
    assert [(r["file"], r["line"], r["reason"]) for r in logged] == [
        (interactions, lines - 1, "bad_timestamp"),
        (interactions, lines, "bad_timestamp"),
    ]
    assert "99999999999999999999" in logged[0]["text"] and "outside" in logged[0]["detail"]


def test_too_many_rejects_fail_the_run_without_publishing(tmp_path):
    interactions, items, _ = _write_with_bad_lines(str(tmp_path))
    out = str(tmp_path / "out")
    config = ConversionConfig(
        source=SOURCE, target=TARGET, max_reject_fraction=0.005, max_rejects_logged=2
    )
    with pytest.raises(DataError, match=r"rejected 3 of \d+ interactions lines .*0\.005"):
        convert_interactions(interactions, out, config, items=items)
    assert sorted(os.listdir(out)) == ["rejects", "stats.json"]
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["status"] == "failed" and "max_reject_fraction" in stats["error"]
    logged = open(os.path.join(out, "rejects", "rejects.jsonl")).read().splitlines()
    assert [json.loads(line)["line"] for line in logged] == [5, 9]


def test_broken_metadata_fails_on_its_own_fraction(tmp_path):
    reviews, meta = _write_amazon(str(tmp_path), 2014)
    with gzip.open(meta[TARGET], "at") as f:
        for _ in range(3):
            f.write("{'asin': 'B1', 'categories': [['Movies'\n")  # truncated literal
    out = str(tmp_path / "out")
    with pytest.raises(DataError, match=r"rejected 3 of \d+ metadata lines"):
        convert_amazon(reviews, out, CONFIG, metadata=meta)
    logged = [json.loads(line) for line in open(os.path.join(out, "rejects", "rejects.jsonl"))]
    movies_meta = sum(1 for domain, _ in CATEGORIES if domain == TARGET)
    assert [(r["file"], r["line"], r["reason"]) for r in logged] == [
        (meta[TARGET], movies_meta + k, "bad_json") for k in (1, 2, 3)
    ]


def test_unknown_domain_is_a_clear_error(tsv_run, tmp_path):
    config = ConversionConfig(source="book", target=TARGET)
    with pytest.raises(DataError, match=r"unknown --source domain 'book'.*'books' \("):
        convert_interactions(
            os.path.join(tsv_run["dir"], "interactions.tsv"), str(tmp_path / "o"), config
        )
    assert not os.path.exists(tmp_path / "o" / "train")
    with pytest.raises(DataError, match="unknown --target domain 'films': reviews were given"):
        convert_amazon(
            {SOURCE: "x.json", TARGET: "y.json"},
            str(tmp_path / "o"),
            ConversionConfig(source=SOURCE, target="films"),
        )


def test_no_surviving_user_is_a_clear_error(tsv_run, tmp_path):
    config = ConversionConfig(source=SOURCE, target=TARGET, min_source_clicks=50)
    expected = "no_source_clicks 1, no_target_clicks 1, too_few_source_clicks 33"
    with pytest.raises(DataError, match=rf"no user survived .*: 35 users dropped: {expected}$"):
        convert_interactions(
            os.path.join(tsv_run["dir"], "interactions.tsv"), str(tmp_path / "o"), config
        )


def test_missing_or_empty_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no file matches"):
        convert_interactions(str(tmp_path / "none.tsv"), str(tmp_path / "o"), CONFIG)
    (tmp_path / "empty.json.gz").write_bytes(b"")
    with pytest.raises(DataError, match="empty.json.gz is empty"):
        convert_amazon(
            {SOURCE: str(tmp_path / "empty.json.gz"), TARGET: str(tmp_path / "empty.json.gz")},
            str(tmp_path / "o"),
            CONFIG,
        )


def test_existing_dataset_needs_overwrite(tsv_run):
    with pytest.raises(DataError, match="already holds a converted dataset.*--overwrite"):
        convert_interactions(
            os.path.join(tsv_run["dir"], "interactions.tsv"), tsv_run["out"], CONFIG
        )
    assert _shard_bytes(tsv_run["out"])["train"]  # untouched


# --------------------------------------------------------------------------
# The candidate's brand, price bucket and tags from an items table.

# (brand, price_bucket, tags cell) of the movies in the hand-made items table;
# "m3" has no row at all.
ITEM_ATTRIBUTES = {
    "m0": ("Acme", "1", "noir| short"),
    "m1": ("", "2", ""),
    "m2": ("Brio", "", "long"),
}


def _write_attribute_fixture(directory, with_attribute_columns):
    interactions = os.path.join(directory, "interactions.tsv")
    rows = ["user_id\titem_id\tdomain\ttimestamp\n"]
    for u in range(8):
        rows += [f"U{u}\tb{(u + k) % 7}\tbooks\t{10 * k + u}\n" for k in range(5)]
        rows += [f"U{u}\tm{(u + k) % 4}\tmovies\t{60 + 10 * k + u}\n" for k in range(3)]
        rows.append(f"U{u}\tonly-{u}\tmovies\t{95 + u}\n")
    with open(interactions, "w") as f:
        f.write("".join(rows))
    attributes = dict(ITEM_ATTRIBUTES)
    attributes.update({f"only-{u}": ("Solo", "0", "indie|indie") for u in range(8)})
    items = os.path.join(directory, "items.tsv")
    with open(items, "w") as f:
        if with_attribute_columns:
            f.write("item_id\tdomain\ttags\tcategory\tprice_bucket\tbrand\n")
            for item, (brand, price, tags) in sorted(attributes.items()):
                f.write(f"{item}\tmovies\t{tags}\tgenre\t{price}\t{brand}\n")
            # A source item's attributes are never written (histories carry categories).
            f.write("b0\tbooks\tx\tbookish\t9\tBookBrand\n")
        else:
            f.write("item_id\tdomain\tcategory\n")
            for item in sorted(attributes):
                f.write(f"{item}\tmovies\tgenre\n")
    return interactions, items


@pytest.mark.parametrize("with_attribute_columns", [True, False])
def test_items_table_attributes_reach_positives_and_negatives(tmp_path, with_attribute_columns):
    interactions, items = _write_attribute_fixture(str(tmp_path), with_attribute_columns)
    out = str(tmp_path / "out")
    config = ConversionConfig(source=SOURCE, target=TARGET, num_shards=1, num_negatives=2)
    convert_interactions(interactions, out, config, items=items)
    # By hand: "noir| short" -> ("noir", "short"); "indie|indie" -> ("indie",).
    expected = {
        "m0": ("Acme", "1", ["noir", "short"]),
        "m1": ("", "2", []),
        "m2": ("Brio", "", ["long"]),
        "m3": ("", "", []),
    } | {f"only-{u}": ("Solo", "0", ["indie"]) for u in range(8)}
    if not with_attribute_columns:
        expected = {item: ("", "", []) for item in expected}
    by_label = collections.Counter()
    for split in SPLITS:
        for ex in read_split(out, split):
            got = (ex[F.ITEM_BRAND], ex[F.ITEM_PRICE_BUCKET], ex[F.ITEM_TAGS])
            assert got == expected[ex[F.ITEM_ID]], ex
            assert ex[F.ITEM_CATEGORY] == ("genre" if ex[F.ITEM_ID] != "m3" else "")
            by_label[ex[F.LABEL], bool(ex[F.ITEM_BRAND])] += 1
    # Positives and negatives alike, with and without a known brand.
    if with_attribute_columns:
        assert all(by_label[label, known] > 0 for label in (0, 1) for known in (False, True))
    else:
        assert by_label[0, False] > 0 and by_label[1, False] > 0
        assert by_label[0, True] == by_label[1, True] == 0


def test_choose_meta_keeps_one_whole_record():
    a = ItemMeta("drama", "Acme", "1", ("noir",))
    b = ItemMeta("drama", "Brio", "", ())
    # The category is chosen first, as it always was: "drama" (2) over "comedy" (1).
    assert _choose_meta([ItemMeta("comedy", "Zed", "3", ("x",)), a, b]) == a
    # A tie between records: the one with more known attributes, not a mix.
    assert _choose_meta([b, a]) == a == _choose_meta([a, b])
    # The most frequent record first.
    assert _choose_meta([b, a, b]) == b
    assert _choose_meta([]) == ItemMeta()
    # No category anywhere: still a record with attributes.
    assert _choose_meta([ItemMeta("", "Acme"), ItemMeta()]) == ItemMeta("", "Acme")
