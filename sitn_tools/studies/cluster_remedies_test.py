from __future__ import annotations

from sitn_tools.studies import cluster_remedies


def _record(remedy, health):
    return {
        "remedy": remedy,
        "eval_losses": {"loss": 11.0, "loss_i2i": 10.25, "loss_i2c": 0.75},
        "cluster_health": {
            "instance_cosine": {"source": 0.9, "target": 0.5},
            "granularities": health,
        },
    }


def test_table_has_one_row_per_remedy_with_the_health_numbers():
    entry = {
        "source_dead_clusters": 30.0,
        "target_dead_clusters": 2.0,
        "source_effective_clusters": 1.04,
        "target_effective_clusters": 20.5,
        "cross_cosine_margin": -0.0123,
        "logit_gap": 6.65,
    }
    text = cluster_remedies.table([_record("paper", {"32": entry}), _record("i2i_only", {})])
    lines = text.splitlines()
    assert len(lines) == 4
    paper = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert paper[:8] == [
        "paper",
        "10.250",
        "0.750",
        "0.900 / 0.500",
        "30 / 2",
        "1.0 / 20.5",
        "-0.012",
        "+6.65",
    ]
    # A remedy without clusters shows dashes, not zeros.
    assert lines[3].count("- / -") == 2 * len(cluster_remedies.TABLE_KS)


def test_every_remedy_is_a_valid_model_config():
    from sitn_tf.models import SITNConfig

    assert cluster_remedies.REMEDIES["paper"] == {}
    for overrides in cluster_remedies.REMEDIES.values():
        SITNConfig(**overrides)  # raises on a bad field


def test_every_remedy_starts_from_the_paper_whatever_the_experiment_sets():
    from sitn_tools.experiment import config as config_lib
    from sitn_tools.experiment.runner import MODEL_FIELDS_ADDED

    experiment = config_lib.validate(
        {
            **config_lib.DEFAULTS,
            "name": "t",
            "data": {"dir": "somewhere"},
            "model": {"embedding_dim": 16, "i2c_view_negatives": True, "usage_entropy_weight": 2.0},
        }
    )
    paper = cluster_remedies.study_config(experiment, "paper", 1).model
    assert {name: getattr(paper, name) for name in MODEL_FIELDS_ADDED} == MODEL_FIELDS_ADDED
    assert paper.embedding_dim == 16  # the experiment's other settings stay
    usage = cluster_remedies.study_config(experiment, "view_negatives_usage", 1).model
    assert usage.i2c_view_negatives and usage.usage_entropy_weight == 1.0


def test_records_compare_on_what_bears_on_stage_1():
    old = {"model": {"embedding_dim": 16}, "training": {"learning_rate": 0.001}}
    new = {
        "model": {"embedding_dim": 16, "i2c_view_negatives": False},
        "training": {"learning_rate": 0.001, "max_logloss_rise": 0.01},
    }
    assert cluster_remedies._comparable(old) == cluster_remedies._comparable(new)
    new["model"]["i2c_view_negatives"] = True
    assert cluster_remedies._comparable(old) != cluster_remedies._comparable(new)
