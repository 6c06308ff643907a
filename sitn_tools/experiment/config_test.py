import pytest

from pipelines import defaults
from sitn_tools.experiment import config as config_lib


def _write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_run_every_variant_over_five_seeds(tmp_path):
    config = config_lib.load(_write(tmp_path, "data: {dir: some/data}\n"))
    assert config["name"] == "exp"
    assert config["seeds"] == [1, 2, 3, 4, 5]
    assert config["variants"] == [v.name for v in config_lib.VARIANTS]
    assert len(config["variants"]) == 8
    # Relative paths are taken from the repository root.
    assert config["data"]["dir"] == f"{defaults.REPO_ROOT}/some/data"
    # No explicit single K: the middle of the default granularities.
    assert config["single_granularity"] == 128


def test_trainer_config_applies_each_variant(tmp_path):
    config = config_lib.load(
        _write(
            tmp_path,
            "data: {dir: d}\nsingle_granularity: 16\n"
            "model: {granularities: [8, 16, 32], top_k: 3}\ntraining: {batch_size: 64}\n",
        )
    )
    by = config_lib.VARIANTS_BY_NAME

    def model(name):
        return config_lib.trainer_config(config, by[name], seed=3)["model"]

    def run(name):
        return config_lib.run_config(config, by[name], seed=3)

    assert model("sitn")["granularities"] == [8, 16, 32] and model("sitn")["top_k"] == 3
    assert run("sitn").pretrains
    assert model("no_mg")["granularities"] == [16] and model("no_mg")["top_k"] == 3
    assert model("no_mv")["granularities"] == [8, 16, 32] and model("no_mv")["top_k"] == 1
    assert model("no_mg_mv")["granularities"] == [16] and model("no_mg_mv")["top_k"] == 1
    assert model("i2i_only")["use_i2c"] is False
    assert model("no_i2i")["use_i2i"] is False
    assert not run("no_pretrain").pretrains and not run("no_pretrain").run.pretrain
    din = run("din")
    assert (din.training.batch_size, din.training.model, din.training.seed) == (64, "din", 3)
    assert not din.pretrains
    assert not by["din"].pretrains and not by["no_pretrain"].pretrains and by["no_mv"].pretrains


def test_variant_training_overrides_one_variant_only(tmp_path):
    config = config_lib.load(
        _write(
            tmp_path,
            "data: {dir: d}\ntraining: {learning_rate: 0.003, batch_size: 64}\n"
            "variant_training: {din: {learning_rate: 0.001}}\n",
        )
    )
    by = config_lib.VARIANTS_BY_NAME
    din = config_lib.run_config(config, by["din"], seed=1).training
    sitn = config_lib.run_config(config, by["sitn"], seed=1).training
    assert (din.learning_rate, din.batch_size, din.model) == (0.001, 64, "din")
    assert (sitn.learning_rate, sitn.batch_size) == (0.003, 64)


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: {dir: d}\nvariant_training: {dien: {learning_rate: 0.1}}\n", "unknown variant"),
        ("data: {dir: d}\nvariant_training: {din: 0.1}\n", "variant_training"),
        ("seeds: [1]\n", "exactly one of `dir` or `command`"),
        ("data: {dir: d, command: synthetic}\n", "exactly one of"),
        ("data: {command: bogus}\n", "interactions|amazon|synthetic"),
        ("data: {dir: d}\nseeds: [1, 1]\n", "`seeds` must be distinct"),
        ("data: {dir: d}\nvariants: [sitn, nope]\n", r"unknown variant\(s\) \['nope'\]"),
        ("data: {dir: d}\nrun: {train_steps: 0}\n", r"run.train_steps: `train_steps` must be"),
        ("data: {dir: d}\ntraining: {batch_size: 0}\n", r"training.batch_size"),
        ("data: {dir: d}\nsurprise: 1\n", r"unknown key\(s\) \['surprise'\]"),
        ("data: {dir: d}\nvariants: [din, sitn]\ncluster_figure_variant: din\n", "pretrained"),
        ("data: {dir: d}\ncluster_figure_variant: nope\n", "is not a variant"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as err:
        config_lib.load(path)
    assert path in str(err.value)


def test_figure_variant_may_be_left_out_of_a_run(tmp_path):
    # `--variants din` runs no stage 1: the report then has no Figure 3.
    config = config_lib.load(_write(tmp_path, "data: {dir: d}\nvariants: [din]\n"))
    assert config["variants"] == ["din"]


def test_seed_count_expands(tmp_path):
    assert config_lib.load(_write(tmp_path, "data: {dir: d}\nseeds: 3\n"))["seeds"] == [1, 2, 3]


def test_shared_transform_path_is_resolved_from_the_repository(tmp_path):
    config = config_lib.load(
        _write(tmp_path, "data: {dir: d}\nshare_transform_with: runs/experiments/x\n")
    )
    assert config["share_transform_with"] == f"{defaults.REPO_ROOT}/runs/experiments/x"


def test_every_committed_experiment_config_loads():
    import glob

    paths = glob.glob(f"{defaults.REPO_ROOT}/experiments/**/*.yaml", recursive=True)
    assert len(paths) >= 3
    for path in paths:
        config = config_lib.load(path)
        assert config["variants"] and config["seeds"]
