"""`sitn-tf data {amazon,interactions,synthetic}`: build the CTR dataset.

Options this CLI does not define are Beam pipeline options and pass through
(`--runner DataflowRunner --project ... --region ...`); a misspelled option
that Beam does not know either is an error, not silently ignored.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from sitn_tf.data.config import (
    SAMPLING_POPULARITY,
    SAMPLING_UNIFORM,
    SPLIT_LEAVE_LAST_OUT,
    SPLIT_TIME,
    TIME_ORDER_GLOBAL,
    TIME_ORDERS,
    DataError,
)
from sitn_tf.defaults import DEFAULT_MAX_SEQ_LEN


def _domain_path(value: str) -> tuple[str, str]:
    domain, sep, path = value.partition("=")
    if not sep or not domain.strip() or not path.strip():
        raise argparse.ArgumentTypeError(
            f"expected DOMAIN=PATH (e.g. books=Books.json.gz), got {value!r}"
        )
    return domain.strip(), path.strip()


def _add_conversion_options(parser: argparse.ArgumentParser, *, synthetic: bool) -> None:
    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", required=True, help="Directory for the dataset.")
    out.add_argument("--overwrite", action="store_true", help="Replace a dataset already there.")
    out.add_argument(
        "--num_shards",
        type=int,
        default=2 if synthetic else 4,
        help="TFRecord files per split (default: %(default)s).",
    )
    rules = parser.add_argument_group("conversion rules")
    if not synthetic:
        rules.add_argument("--source", required=True, help="Source domain, e.g. books.")
        rules.add_argument("--target", required=True, help="Target domain, e.g. movies.")
    rules.add_argument(
        "--click_min_rating",
        type=float,
        default=4.0,
        help="A rated row is a click when rating >= this (default: %(default)s). "
        "Rows without a rating are all clicks.",
    )
    rules.add_argument(
        "--min_source_clicks", type=int, default=5,
        help="Users need this many source clicks (default: %(default)s).",
    )  # fmt: skip
    rules.add_argument(
        "--min_target_clicks", type=int, default=2,
        help="Users need this many target clicks (default: %(default)s).",
    )  # fmt: skip
    rules.add_argument(
        "--max_seq_len", type=int, default=DEFAULT_MAX_SEQ_LEN,
        help="Keep the most recent clicks of each history (default: %(default)s).",
    )  # fmt: skip
    rules.add_argument(
        "--num_negatives", type=int, default=4,
        help="Negatives per positive (default: %(default)s).",
    )  # fmt: skip
    rules.add_argument(
        "--negative_sampling",
        choices=(SAMPLING_POPULARITY, SAMPLING_UNIFORM),
        default=SAMPLING_POPULARITY,
        help="How negatives are drawn (default: %(default)s).",
    )
    rules.add_argument(
        "--seed", type=int, default=42,
        help="Seed of negative sampling (default: %(default)s).",
    )  # fmt: skip
    rules.add_argument(
        "--split",
        choices=(SPLIT_LEAVE_LAST_OUT, SPLIT_TIME),
        default=SPLIT_LEAVE_LAST_OUT,
        help="leave_last_out: per user, last target click -> test, second to "
        "last -> eval; time: global cut-offs --eval_start/--test_start.",
    )
    rules.add_argument(
        "--time_order",
        choices=TIME_ORDERS,
        default=TIME_ORDER_GLOBAL,
        help="global: timestamps are times on one clock, comparable across users; "
        "per_user: they only order each user's own clicks, so negatives and candidate "
        "statistics use the splits instead of cross-user times (no --split time) "
        "(default: %(default)s).",
    )
    rules.add_argument(
        "--eval_start",
        help="With --split time: first eval time, unix seconds or ISO date (UTC).",
    )
    rules.add_argument(
        "--test_start",
        help="With --split time: first test time, unix seconds or ISO date (UTC).",
    )
    bad = parser.add_argument_group("bad input")
    bad.add_argument(
        "--max_reject_fraction",
        type=float,
        default=0.01,
        help="Fail when more than this fraction of the interaction (or metadata) "
        "lines is rejected (default: %(default)s).",
    )
    bad.add_argument(
        "--max_rejects_logged",
        type=int,
        default=100,
        help="Write the first N rejected lines to OUT/rejects/ (default: %(default)s).",
    )
    beam_group = parser.add_argument_group(
        "Apache Beam", "Any other option is passed to Beam as a pipeline option."
    )
    beam_group.add_argument(
        "--runner",
        default="DirectRunner",
        help="Beam runner (default: %(default)s), e.g. DataflowRunner, FlinkRunner.",
    )


def register(groups: Any) -> None:
    """Adds `data` with its commands to the `sitn-tf` parser."""
    data = groups.add_parser(
        "data",
        help="Build the cross-domain CTR dataset (TFRecords) from raw interactions.",
        description="Convert raw interactions into time-ordered cross-domain CTR "
        "TFRecords: OUT/{train,eval,test}/*.tfrecord.gz, OUT/stats.json, "
        "OUT/rejects/.",
        allow_abbrev=False,
    )
    commands = data.add_subparsers(dest="command", metavar="COMMAND", required=True)

    amazon = commands.add_parser(
        "amazon",
        help="Amazon Review Data (2018 or 2014 release), one file per domain.",
        description="Amazon Review Data, 2018 (JSON lines) or 2014 (JSON reviews, "
        "Python-literal metadata), plain or gzip.",
        allow_abbrev=False,
    )
    files = amazon.add_argument_group("inputs")
    files.add_argument(
        "--reviews",
        type=_domain_path,
        action="append",
        required=True,
        metavar="DOMAIN=PATH",
        help="Reviews of one domain (path or glob), e.g. books=Books.json.gz; repeat "
        "for each domain.",
    )
    files.add_argument(
        "--meta",
        type=_domain_path,
        action="append",
        default=[],
        metavar="DOMAIN=PATH",
        help="Metadata of one domain, e.g. books=meta_Books.json.gz (optional).",
    )
    files.add_argument(
        "--category_level",
        type=int,
        default=1,
        help="Level of the category path used as item category: 0 = root "
        "(e.g. Books), 1 = the level below, -1 = deepest (default: %(default)s).",
    )
    _add_conversion_options(amazon, synthetic=False)
    amazon.set_defaults(run=_run_amazon)

    table = commands.add_parser(
        "interactions",
        help="A TSV/CSV table user_id,item_id,domain,timestamp[,rating] (+ items).",
        description="Generic interactions: a header naming user_id, item_id, domain, "
        "timestamp and optionally rating; optional items file with item_id, domain "
        "and optionally category, brand, title, price_bucket, tags (|-separated).",
        allow_abbrev=False,
    )
    files = table.add_argument_group("inputs")
    files.add_argument("--interactions", required=True, help="Interactions file (path or glob).")
    files.add_argument("--items", help="Items file (path or glob), optional.")
    files.add_argument(
        "--delimiter",
        help="Column separator (default: tab for .tsv, comma for .csv, else from the header).",
    )
    _add_conversion_options(table, synthetic=False)
    table.set_defaults(run=_run_interactions)

    synthetic = commands.add_parser(
        "synthetic",
        help="Generate the seeded synthetic dataset with planted shared interests.",
        description="Generate interactions with K latent interests shared by both "
        "domains (OUT/raw/*.tsv) and convert them like any interactions table.",
        allow_abbrev=False,
    )
    gen = synthetic.add_argument_group("generator")
    gen.add_argument("--num_users", type=int, default=3000)
    gen.add_argument("--num_interests", type=int, default=12)
    gen.add_argument("--items_per_domain", type=int, default=1000)
    gen.add_argument(
        "--noise",
        type=float,
        default=0.2,
        help="Share of interactions drawn regardless of interests (default: %(default)s).",
    )
    gen.add_argument("--generator_seed", type=int, default=7)
    gen.add_argument("--source", default="books", help="Source domain name.")
    gen.add_argument("--target", default="movies", help="Target domain name.")
    _add_conversion_options(synthetic, synthetic=True)
    synthetic.set_defaults(run=_run_synthetic)

    for parser in (amazon, table, synthetic):
        parser.set_defaults(pass_through=True, user_errors=(DataError,))


def _check_beam_args(beam_args: list[str]) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(beam_args)
    with_unknown = options.get_all_options(retain_unknown_options=True)
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # it warns about what we report below
    try:
        known = options.get_all_options()
    finally:
        beam_logger.setLevel(level)
    unknown = sorted(set(with_unknown) - set(known))
    if unknown:
        raise DataError(
            "unknown option(s) "
            + ", ".join(f"--{name}" for name in unknown)
            + ": neither a `sitn-tf data` option nor a Beam pipeline option"
        )


def _config(args: argparse.Namespace, **extra: Any):
    from sitn_tf.data.config import ConversionConfig, parse_time

    return ConversionConfig(
        source=args.source,
        target=args.target,
        click_min_rating=args.click_min_rating,
        min_source_clicks=args.min_source_clicks,
        min_target_clicks=args.min_target_clicks,
        max_seq_len=args.max_seq_len,
        num_negatives=args.num_negatives,
        negative_sampling=args.negative_sampling,
        seed=args.seed,
        split=args.split,
        time_order=args.time_order,
        eval_start=parse_time(args.eval_start, "--eval_start"),
        test_start=parse_time(args.test_start, "--test_start"),
        num_shards=args.num_shards,
        max_reject_fraction=args.max_reject_fraction,
        max_rejects_logged=args.max_rejects_logged,
        **extra,
    )


def _beam_args(args: argparse.Namespace) -> list[str]:
    beam_args = [f"--runner={args.runner}", *args.extra_args]
    _check_beam_args(beam_args)
    return beam_args


def _run_amazon(args: argparse.Namespace) -> int:
    from sitn_tf.data.convert import convert_amazon

    reviews = dict(args.reviews)
    if len(reviews) != len(args.reviews):
        raise DataError("--reviews names a domain twice")
    meta = dict(args.meta)
    if len(meta) != len(args.meta):
        raise DataError("--meta names a domain twice")
    convert_amazon(
        reviews,
        args.output_dir,
        _config(args, category_level=args.category_level),
        metadata=meta,
        beam_args=_beam_args(args),
        overwrite=args.overwrite,
        report=print,
    )
    return 0


def _run_interactions(args: argparse.Namespace) -> int:
    from sitn_tf.data.convert import convert_interactions

    convert_interactions(
        args.interactions,
        args.output_dir,
        _config(args),
        items=args.items,
        delimiter=args.delimiter,
        beam_args=_beam_args(args),
        overwrite=args.overwrite,
        report=print,
    )
    return 0


def _run_synthetic(args: argparse.Namespace) -> int:
    import dataclasses

    from sitn_tf.data.synthetic import SyntheticConfig, prepare_synthetic_dataset

    synthetic = SyntheticConfig(
        num_users=args.num_users,
        num_interests=args.num_interests,
        items_per_domain=args.items_per_domain,
        noise=args.noise,
        seed=args.generator_seed,
        source_domain=args.source,
        target_domain=args.target,
    )
    config = _config(args)
    conversion = {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if field.name not in ("source", "target")
    }
    prepare_synthetic_dataset(
        args.output_dir,
        synthetic,
        conversion=conversion,
        beam_args=_beam_args(args),
        overwrite=args.overwrite,
        report=print,
    )
    return 0
