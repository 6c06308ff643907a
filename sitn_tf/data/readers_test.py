"""Line parsers and input discovery."""

from __future__ import annotations

import gzip
import json

import pytest

from sitn_tf.data import readers
from sitn_tf.data.config import DataError
from sitn_tf.data.item_meta import ItemMeta, split_tags

TSV = readers.InputFile(
    path="x.tsv",
    kind=readers.KIND_INTERACTIONS,
    gzip=False,
    delimiter="\t",
    columns=("user_id", "item_id", "domain", "timestamp", "rating"),
)
CSV_ITEMS = readers.InputFile(
    path="items.csv",
    kind=readers.KIND_ITEMS,
    gzip=False,
    delimiter=",",
    columns=("item_id", "domain", "category", "title"),
)
REVIEWS = readers.InputFile(
    path="Books.json", kind=readers.KIND_AMAZON_REVIEWS, gzip=False, domain="books"
)
META = readers.InputFile(
    path="meta_Books.json", kind=readers.KIND_AMAZON_META, gzip=False, domain="books"
)


def test_interaction_row_keeps_ids_as_strings():
    row = readers.parse_interaction_row("A1\t0001234567\tbooks\t1399939200\t4", TSV)
    assert row == ("A1", "books", "0001234567", 1399939200, 4.0)


def test_timestamps_at_the_ends_of_the_valid_range_are_kept():
    for value in (readers.MIN_TIMESTAMP, readers.MAX_TIMESTAMP):
        row = readers.parse_interaction_row(f"A1\tX\tbooks\t{value}\t5", TSV)
        assert row[3] == value


def test_interaction_row_accepts_integral_float_timestamp():
    row = readers.parse_interaction_row("A1\tX\tbooks\t1399939200.0\t5.0", TSV)
    assert row[3] == 1399939200 and isinstance(row[3], int)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("A1\tX\tbooks\tabc\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t1.5\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t99999999999999999999\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t9223372036854775808\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t-5\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t-1.0\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t1e30\t4", "bad_timestamp"),
        ("A1\tX\tbooks\t100\tfive", "bad_rating"),
        ("A1\tX\tbooks\t100\tnan", "bad_rating"),
        ("A1\tX\tbooks\t100", "wrong_column_count"),
        ("A1\tX\tbooks\t100\t4\textra", "wrong_column_count"),
        ("\tX\tbooks\t100\t4", "missing_field"),
        ("A1\tX\t\t100\t4", "missing_field"),
        ("A1\tX\tbooks\t100\t", "missing_field"),
    ],
)
def test_interaction_row_rejects(line, reason):
    with pytest.raises(readers.Reject) as err:
        readers.parse_interaction_row(line, TSV)
    assert err.value.reason == reason


def test_csv_item_row_honours_quotes():
    key, meta = readers.parse_item_row(
        '0042,books,"Mystery, Thriller & Suspense","A title, with comma"', CSV_ITEMS
    )
    assert key == ("books", "0042")
    # No brand, price_bucket or tags column: unknown.
    assert meta == ItemMeta("Mystery, Thriller & Suspense", "", "", ())


TSV_ITEMS = readers.InputFile(
    path="items.tsv",
    kind=readers.KIND_ITEMS,
    gzip=False,
    delimiter="\t",
    columns=("item_id", "domain", "category", "brand", "title", "price_bucket", "tags"),
)


def test_item_row_carries_brand_price_bucket_and_tags():
    key, meta = readers.parse_item_row(
        "m1\tmovies\tdrama\t Acme \tA title\t3\tcozy| short ||cozy|noir", TSV_ITEMS
    )
    assert key == ("movies", "m1")
    # Cells are stripped; empty tags and repeats are left out, order kept.
    assert meta == ItemMeta("drama", "Acme", "3", ("cozy", "short", "noir"))
    _, empty = readers.parse_item_row("m2\tmovies\t\t\t\t\t", TSV_ITEMS)
    assert empty == ItemMeta()


def test_split_tags():
    assert split_tags("") == ()
    assert split_tags(" | |") == ()
    assert split_tags("b|a|b") == ("b", "a")


def test_amazon_2018_review():
    line = json.dumps(
        {
            "overall": 5.0,
            "verified": True,
            "reviewTime": "09 13, 2009",
            "reviewerID": "A3HFWAAUNBSDHP",
            "asin": "0000013714",
            "unixReviewTime": 1252800000,
        }
    )
    assert readers.parse_amazon_review(line, REVIEWS) == (
        "A3HFWAAUNBSDHP",
        "books",
        "0000013714",
        1252800000,
        5.0,
    )


def test_amazon_2014_python_literal_review_is_accepted():
    line = "{'reviewerID': 'A2', 'asin': '0000031852', 'overall': 4.0, 'unixReviewTime': 1}"
    assert readers.parse_amazon_review(line, REVIEWS)[2] == "0000031852"


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"reviewerID": "A", "asin": "B", "overall": 5.0', "bad_json"),
        ("[1, 2]", "not_an_object"),
        ('{"asin": "B", "overall": 5.0, "unixReviewTime": 1}', "missing_field"),
        ('{"reviewerID": "A", "asin": "B", "overall": 5.0}', "missing_field"),
        ('{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}', "missing_field"),
        ('{"reviewerID": "A", "asin": 7, "overall": 5, "unixReviewTime": 1}', "missing_field"),
        ('{"reviewerID": "A", "asin": "B", "overall": "x", "unixReviewTime": 1}', "bad_rating"),
        ('{"reviewerID": "A", "asin": "B", "overall": 5, "unixReviewTime": "x"}', "bad_timestamp"),
        # literal_eval builds literals only: a call is a syntax error to it.
        ("{'reviewerID': __import__('os').getpid()}", "bad_json"),
    ],
)
def test_amazon_review_rejects(line, reason):
    with pytest.raises(readers.Reject) as err:
        readers.parse_amazon_review(line, REVIEWS)
    assert err.value.reason == reason


def test_amazon_2018_meta_category_levels():
    line = json.dumps(
        {
            "asin": "0000092878",
            "title": "Biology Gods Living Creation",
            "brand": "Edward J. Shewan",
            "category": ["Books", "Christian Books &amp; Bibles", "Bible Study"],
            "main_cat": "Books",
        }
    )
    assert readers.parse_amazon_meta(line, META, 1) == (
        ("books", "0000092878"),
        ItemMeta("Christian Books & Bibles", brand="Edward J. Shewan"),
    )
    assert readers.parse_amazon_meta(line, META, 0)[1].category == "Books"
    assert readers.parse_amazon_meta(line, META, -1)[1].category == "Bible Study"
    assert readers.parse_amazon_meta(line, META, 7)[1].category == "Bible Study"


@pytest.mark.parametrize(
    "brand, expected",
    [
        ("  Procter &amp; Gamble ", "Procter & Gamble"),  # cleaned like categories
        ("", ""),
        (None, ""),
        (["not", "a", "string"], ""),
    ],
)
def test_amazon_meta_brand(brand, expected):
    line = json.dumps({"asin": "B1", "brand": brand, "price": "$12.99"})
    # Amazon has no price bucket or tags: those stay unknown.
    assert readers.parse_amazon_meta(line, META, 1)[1] == ItemMeta("", expected, "", ())
    assert readers.parse_amazon_meta('{"asin": "B1"}', META, 1)[1] == ItemMeta()


def test_amazon_2018_meta_falls_back_to_main_cat_image_alt():
    line = json.dumps(
        {
            "asin": "B0001",
            "category": [],
            "main_cat": '<img src="https://x/amazon-fashion.png" class="nav-categ-image"'
            ' alt="AMAZON FASHION"/>',
        }
    )
    assert readers.parse_amazon_meta(line, META, 1)[1].category == "AMAZON FASHION"


def test_amazon_2014_meta_python_literal_with_categories():
    line = (
        "{'asin': '0001048791', 'salesRank': {'Books': 6334800}, "
        "'categories': [['Books', 'Literature & Fiction'], ['Kindle Store']], "
        "'title': \"The Crucible: Performed by Stuart Pankin, Jerome Dempsey & Cast\"}"
    )
    assert readers.parse_amazon_meta(line, META, 1) == (
        ("books", "0001048791"),
        ItemMeta("Literature & Fiction"),
    )


def test_amazon_meta_without_category_is_empty():
    assert readers.parse_amazon_meta('{"asin": "X1"}', META, 1)[1].category == ""


def test_decode_line_rejects_invalid_utf8():
    with pytest.raises(readers.Reject) as err:
        readers.decode_line(b"A1\t\xff\xfe\tbooks\t1\n")
    assert err.value.reason == "bad_encoding"


def test_describe_delimited_reads_header_and_sniffs_gzip(tmp_path):
    path = tmp_path / "part.data"  # no telling extension: content decides
    with gzip.open(path, "wt") as f:
        f.write("timestamp,domain,item_id,user_id\n1,books,0001,A\n")
    (described,) = readers.describe_delimited(str(path), readers.KIND_INTERACTIONS)
    assert described.gzip
    assert described.delimiter == ","
    assert described.columns == ("timestamp", "domain", "item_id", "user_id")
    lines = list(readers.read_numbered_lines(described))
    assert lines == [(2, b"1,books,0001,A\n")]
    row = readers.parse_interaction_row(lines[0][1].decode().rstrip("\n"), described)
    assert row == ("A", "books", "0001", 1, None)


def test_describe_delimited_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no file matches"):
        readers.describe_delimited(str(tmp_path / "nope*.tsv"), readers.KIND_INTERACTIONS)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.tsv is empty"):
        readers.describe_delimited(str(empty), readers.KIND_INTERACTIONS)
    headless = tmp_path / "headless.tsv"
    headless.write_text("A1\t0001\tbooks\t1\n")
    with pytest.raises(DataError, match=r"headless.tsv line 1: .*missing user_id"):
        readers.describe_delimited(str(headless), readers.KIND_INTERACTIONS)


def test_byte_order_mark_does_not_break_json():
    line = readers.decode_line('\ufeff{"asin": "0001", "category": ["Books", "Art"]}\n'.encode())
    assert readers.parse_amazon_meta(line, META, 1) == (("books", "0001"), ItemMeta("Art"))
