"""Conversion settings: validation messages and time parsing."""

from __future__ import annotations

import pytest

from sitn_tf.data.config import ConversionConfig, DataError, parse_time


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (1388534400, 1388534400),
        ("1388534400", 1388534400),
        ("2014-01-01", 1388534400),
        ("2014-01-01T06:00:00", 1388534400 + 6 * 3600),
        ("2014-01-01T00:00:00+01:00", 1388534400 - 3600),
    ],
)
def test_parse_time(value, expected):
    assert parse_time(value, "--test_start") == expected


def test_parse_time_error_names_the_flag():
    with pytest.raises(DataError, match="`--eval_start` must be unix seconds or an ISO date"):
        parse_time("next week", "--eval_start")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "books"}, "must differ"),
        ({"source": ""}, "must be named"),
        ({"min_source_clicks": 0}, "`min_source_clicks` must be >= 1"),
        ({"min_target_clicks": 1}, "must be >= 2 with leave-last-out"),
        ({"max_seq_len": 0}, "`max_seq_len` must be >= 1"),
        ({"num_negatives": -1}, "`num_negatives` must be >= 0"),
        ({"negative_sampling": "hard"}, "`negative_sampling` must be"),
        ({"split": "random"}, "`split` must be"),
        ({"split": "time", "eval_start": 5}, "needs both"),
        ({"split": "time", "eval_start": 9, "test_start": 5}, "`eval_start` must be <="),
        ({"test_start": 5}, "only apply with `--split time`"),
        ({"time_order": "local"}, "`time_order` must be 'global' or 'per_user'"),
        (
            {"time_order": "per_user", "split": "time", "eval_start": 1, "test_start": 2},
            "`--split time` cannot be used with `--time_order per_user`",
        ),
        ({"num_shards": 0}, "`num_shards` must be >= 1"),
        ({"max_reject_fraction": 1.5}, "`max_reject_fraction` must be in"),
        ({"max_rejects_logged": -1}, "`max_rejects_logged` must be >= 0"),
    ],
)
def test_bad_config(kwargs, message):
    settings = {"source": "books", "target": "movies", **kwargs}
    with pytest.raises(DataError, match=message):
        ConversionConfig(**settings)


def test_defaults_follow_the_paper_and_the_issue():
    config = ConversionConfig(source="books", target="movies")
    assert (config.min_source_clicks, config.min_target_clicks) == (5, 2)
    assert (config.max_seq_len, config.num_negatives, config.click_min_rating) == (50, 4, 4.0)
    assert config.max_reject_fraction == 0.01
    assert config.to_dict()["split"] == "leave_last_out"
    assert config.to_dict()["time_order"] == "global"
