from __future__ import annotations

from sitn_tf.models import SITNConfig
from sitn_tools.experiment.runner import MODEL_FIELDS_ADDED, with_new_model_defaults


def test_a_record_made_before_a_model_field_existed_matches_the_old_behaviour():
    paper = SITNConfig(embedding_dim=32, **MODEL_FIELDS_ADDED)
    current = {"model": paper.to_dict(), "run": {"train_steps": 5}}
    for name in ("num_source_items", "num_target_items", "num_categories"):
        current["model"].pop(name)
    old = {"model": dict(current["model"]), "run": {"train_steps": 5}}
    del old["model"]["cluster_assignment"], old["model"]["usage_entropy_weight"]
    assert with_new_model_defaults(old) == with_new_model_defaults(current)
    # The field at a value other than its default is another configuration.
    changed = {**current, "model": {**current["model"], "cluster_assignment": "sinkhorn"}}
    assert with_new_model_defaults(old) != with_new_model_defaults(changed)
    # A recorded value is never overwritten by a default.
    assert with_new_model_defaults(old)["model"]["embedding_dim"] == 32
    assert with_new_model_defaults(None) is None
    # The training section likewise: no logloss guard before it existed.
    old["training"] = {"learning_rate": 0.003}
    current["training"] = {"learning_rate": 0.003, "max_logloss_rise": None}
    assert with_new_model_defaults(old) == with_new_model_defaults(current)
    current["training"]["max_logloss_rise"] = 0.02
    assert with_new_model_defaults(old) != with_new_model_defaults(current)
    # Transform options no ranker reads do not part a record from a config.
    old["transform"] = {"max_seq_len": 50}
    current["transform"] = {"max_seq_len": 50, "max_item_tags": 3}
    current["training"]["max_logloss_rise"] = None
    assert with_new_model_defaults(old) == with_new_model_defaults(current)
    current["transform"]["max_seq_len"] = 20
    assert with_new_model_defaults(old) != with_new_model_defaults(current)
