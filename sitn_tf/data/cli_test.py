"""`sitn-tf data ...` end to end, plus the command-group mechanism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from sitn_tf import cli

HEADER = "user_id\titem_id\tdomain\ttimestamp\n"


def _tiny_tsv(path):
    rows = []
    for u in range(6):
        rows += [f"U{u}\t{b:010d}\tbooks\t{100 + b}\n" for b in range(5)]
        rows += [f"U{u}\tB{m:09d}\tmovies\t{200 + m + u}\n" for m in range(u % 3, u % 3 + 3)]
    path.write_text(HEADER + "".join(rows))
    return str(path)


def test_interactions_command_reports_counters_and_summary(tmp_path, capsys):
    source = _tiny_tsv(tmp_path / "in.tsv")
    out = str(tmp_path / "out")
    argv = ["data", "interactions", "--interactions", source, "--source", "books"]
    argv += ["--target", "movies", "--output_dir", out, "--num_shards", "1"]
    argv += ["--num_negatives", "1", "--runner", "DirectRunner", "--direct_num_workers", "1"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Beam counters (sitn_tf.data):" in printed
    assert "users/kept" in printed
    summary = printed.strip().splitlines()[-1]
    assert summary.startswith("ok: 48 lines, 0 rejected, 6/6 users kept; train 10 (6 pos")
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["config"]["num_negatives"] == 1
    assert stats["config"]["time_order"] == "global"
    assert stats["runner"] == "DirectRunner"
    # A second run needs --overwrite, and says so.
    assert cli.main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0


def test_amazon_command_takes_domain_paths(tmp_path, capsys):
    for name, domain, count in (("Books.json", "books", 5), ("Movies.json", "movies", 3)):
        with open(tmp_path / name, "w") as f:
            for i in range(count):
                review = {"reviewerID": "A1", "asin": f"{i:010d}", "overall": 5.0}
                review["unixReviewTime"] = 100 * i + (1 if domain == "movies" else 0)
                f.write(json.dumps(review) + "\n")
    with open(tmp_path / "meta_Movies.json", "w") as f:
        f.write(json.dumps({"asin": "0000000001", "category": ["Movies & TV", "Drama"]}) + "\n")
    out = str(tmp_path / "out")
    argv = ["data", "amazon", "--reviews", f"books={tmp_path / 'Books.json'}"]
    argv += ["--reviews", f"movies={tmp_path / 'Movies.json'}"]
    argv += ["--meta", f"movies={tmp_path / 'meta_Movies.json'}", "--source", "books"]
    argv += ["--target", "movies", "--output_dir", out, "--num_negatives", "0"]
    assert cli.main(argv) == 0
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["format"] == "amazon"
    assert {s: v["positives"] for s, v in stats["splits"].items()} == {
        "train": 1,
        "eval": 1,
        "test": 1,
    }
    assert stats["items"]["categories"] == 1


def test_synthetic_command(tmp_path, capsys):
    out = str(tmp_path / "syn")
    argv = ["data", "synthetic", "--output_dir", out, "--num_users", "80"]
    argv += ["--items_per_domain", "60", "--num_interests", "4", "--seed", "3"]
    assert cli.main(argv) == 0
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["config"]["seed"] == 3 and stats["config"]["num_shards"] == 2
    assert sorted(os.listdir(os.path.join(out, "raw"))) == ["interactions.tsv", "items.tsv"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--num_negative", "3"], "unknown option(s) --num_negative"),
        (["--split", "time"], "needs both `--eval_start` and `--test_start`"),
        (["--eval_start", "soon", "--test_start", "1", "--split", "time"], "`--eval_start` must"),
        (["--num_negatives", "-1"], "`num_negatives` must be >= 0"),
        (
            ["--time_order", "per_user", "--split", "time", "--eval_start", "1"]
            + ["--test_start", "2"],
            "`--split time` cannot be used with `--time_order per_user`",
        ),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    argv = ["data", "interactions", "--interactions", _tiny_tsv(tmp_path / "in.tsv")]
    argv += ["--source", "books", "--target", "movies", "--output_dir", str(tmp_path / "o")]
    assert cli.main(argv + extra) == 1
    err = capsys.readouterr().err
    assert err.startswith("sitn-tf data: error: ") and message in err
    assert not os.path.exists(tmp_path / "o")


def test_malformed_domain_path_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "amazon", "--reviews", "Books.json", "--source", "a"])
    assert exit_info.value.code == 2
    assert "expected DOMAIN=PATH" in capsys.readouterr().err


def test_command_groups_register_with_one_line(monkeypatch, capsys):
    calls = []

    def register(groups):
        parser = groups.add_parser("hello", allow_abbrev=False)
        parser.add_argument("--name", required=True)
        parser.set_defaults(run=lambda args: calls.append(args.name) or 3)

    monkeypatch.setitem(sys.modules, "fake_group", types.SimpleNamespace(register=register))
    groups = (*cli.LIBRARY_GROUPS, "fake_group")
    assert cli.main(["hello", "--name", "x"], groups) == 3
    assert calls == ["x"]
    # Groups without pass_through do not swallow unknown options.
    with pytest.raises(SystemExit):
        cli.main(["hello", "--name", "x", "--runner", "DirectRunner"], groups)
    assert "unrecognized arguments: --runner DirectRunner" in capsys.readouterr().err


def test_python_dash_m_help_is_fast_and_lists_groups():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sitn_tf", "data", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "amazon" in result.stdout and "synthetic" in result.stdout
    # --help must not pay for Beam or TensorFlow.
    assert "apache_beam" not in result.stderr and "tensorflow" not in result.stderr
