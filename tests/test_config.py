"""Model configs with their published defaults, the command line generated from them, config files."""

import dataclasses
import json

import pytest

from igrsr.cli import build_parser, main
from igrsr.cli.options import model_fields, model_options
from igrsr.cli.train import stage2_config, train_config
from igrsr.config import ConfigError
from igrsr.models.registry import MODELS, model_config
from igrsr.train import TrainConfig, make_spec


def parse(*argv):
    from igrsr.cli import parse as parse_arguments

    return parse_arguments(build_parser(), list(argv))


def resolved(*argv, models=None):
    """``{model: its resolved config}`` for a ``train`` command line."""
    args = parse("train", *argv)
    names = models or list(MODELS)
    options, per_model = model_options(args, names)
    return {name: model_config(name, {**options, **per_model.get(name, {})}) for name in names}


def test_each_model_gets_its_own_published_defaults_unless_overridden():
    configs = resolved()
    for name, config in configs.items():
        assert config == MODELS[name].config(), name
    assert configs["bert4rec"].dropout == 0.1 and configs["sasrec"].dropout == 0.5
    assert configs["bert4rec"].mask_ratio == 0.2 and configs["ssept"].sse_user_prob == 0.92
    overridden = resolved("--dropout", "0.3", "--mask-ratio", "0.4")
    assert all(config.dropout == 0.3 for config in overridden.values() if hasattr(config, "dropout"))
    assert overridden["bert4rec"].mask_ratio == 0.4 and overridden["igrsr"].num_intents == 4


def test_bert4rec_trained_from_the_command_line_with_no_options_uses_dropout_0_1(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text(
        "".join(f"{u} " + " ".join(str(1 + (u * 3 + i) % 30) for i in range(8)) + "\n" for u in range(1, 41))
    )
    assert main(["train", "--model", "bert4rec", "--data", str(data), "--out", str(tmp_path / "runs"),
                 "--epochs", "1", "--no-progress"]) == 0  # fmt: skip
    (results,) = (tmp_path / "runs" / "d").glob("bert4rec-*/results.json")
    config = json.loads(results.read_text())["config"]
    assert config["dropout"] == 0.1 and config == MODELS["bert4rec"].config().to_dict()


def test_every_option_is_declared_once_with_one_type():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = [flag for action in train._actions for flag in action.option_strings]
    assert len(flags) == len(set(flags))
    assert {"--dropout", "--mask-ratio", "--num-intents", "--codebook-start", "--lr", "--stage2-lr"} <= set(flags)
    for name, owners in model_fields().items():
        assert len({str(hint) for _, hint, _ in owners}) == 1, name


@pytest.mark.parametrize(
    "model, option, value, message",
    [
        ("igrsr", "num_intents", 17, "num_intents must be in [1, 16]"),
        ("sasrec", "d_model", 0, "d_model must be >= 1"),
        ("sasrec", "num_heads", 3, "num_heads must divide d_model=64"),
        ("bert4rec", "mask_ratio", 1.0, "mask_ratio must be in (0, 1)"),
        ("sasrec", "dropout", float("nan"), "dropout must be a finite number"),
        ("sasrec", "loss", "hinge", "loss must be one of ce, sampled-softmax, gbce, bce"),
        ("sasrec", "backend", "cuda-please", "backend must be 'auto' or one of"),
        ("lightrec", "codebook_size", 1.5, "codebook_size must be an integer"),
    ],
)
def test_bad_model_options_fail_when_the_config_is_built_naming_the_option(model, option, value, message):
    with pytest.raises(ConfigError) as error:
        model_config(model, {option: value})
    assert message in str(error.value) and error.value.option == option


def test_bad_training_settings_fail_naming_the_setting():
    bad = [(dict(lr=float("inf")), "lr"), (dict(epochs=0), "epochs"), (dict(eval_batch_size=0), "eval_batch_size"),
           (dict(device="tpu"), "device")]  # fmt: skip
    for changes, name in bad:
        with pytest.raises(ConfigError, match=name):
            TrainConfig(**changes)


def test_the_command_checks_every_option_before_training(tmp_path, capsys):
    # IGR-SR's options are checked against its SASRec's before stage 1 trains.
    assert main(["train", "--model", "igrsr", "--num-heads", "3", "--out", str(tmp_path)]) == 2
    assert "--num-heads must divide d_model=64" in capsys.readouterr().err
    assert main(["train", "--model", "igrsr", "--num-intents", "17", "--out", str(tmp_path)]) == 2
    assert "--num-intents must be in [1, 16], got 17" in capsys.readouterr().err
    assert main(["train", "--eval-batch-size", "0", "--out", str(tmp_path)]) == 2
    assert "--eval-batch-size must be >= 1" in capsys.readouterr().err
    assert main(["train", "--model", "sasrec", "--mask-ratio", "0.3", "--out", str(tmp_path)]) == 2
    assert (
        "--mask-ratio: no model of this command takes it (sasrec); it is an option of bert4rec"
        in capsys.readouterr().err
    )
    assert not list(tmp_path.iterdir())


def test_a_config_file_sets_options_and_the_command_line_overrides_it(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text(
        "model: [sasrec, bert4rec]\nlr: 2e-3\nepochs: 40\ndropout: 0.2\nstage2-epochs: 5\nevery_window: true\n"
        "model_options:\n  bert4rec: {mask_ratio: 0.4, dropout: 0.15}\n"
    )
    args = parse("train", "--config", str(file), "--epochs", "7")
    assert args.model == "sasrec,bert4rec"
    train = train_config(args)
    assert (train.lr, train.epochs, train.every_window) == (2e-3, 7, True)  # YAML's "2e-3" is a string
    assert stage2_config(args).stage2_epochs == 5
    configs = resolved("--config", str(file), models=["sasrec", "bert4rec"])
    assert configs["sasrec"].dropout == 0.2  # the file's top level
    assert (configs["bert4rec"].dropout, configs["bert4rec"].mask_ratio) == (0.15, 0.4)  # its model section
    configs = resolved("--config", str(file), "--dropout", "0.3", models=["sasrec", "bert4rec"])
    assert configs["bert4rec"].dropout == 0.3  # the command line wins over the file's model section
    json_file = tmp_path / "exp.json"
    json_file.write_text(json.dumps({"lr": 0.01, "num_intents": 2}))
    assert resolved("--config", str(json_file), models=["igrsr"])["igrsr"].num_intents == 2


@pytest.mark.parametrize(
    "content, message",
    [
        ("lrr: 1\n", "unknown option 'lrr'"),
        ("epochs: many\n", "epochs: invalid int 'many'"),
        ("loss: hinge\n", "loss: expected one of ce, sampled-softmax, gbce, bce"),
        ("every_window: 3\n", "every_window: expected true or false"),
        ("model_options:\n  gru4rec: {dropout: 0.1}\n", "unknown model 'gru4rec'"),
        ("model_options:\n  sasrec: {mask_ratio: 0.1}\n", "sasrec has no option 'mask_ratio'"),
        ("[1, 2]\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, capsys, content, message):
    file = tmp_path / "bad.yaml"
    file.write_text(content)
    assert main(["train", "--config", str(file), "--out", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert message in error and str(file) in error and error.count("\n") == 1


def test_synthetic_presets_fill_only_the_settings_not_given():
    assert (train_config(parse("train")).lr, train_config(parse("train")).batch_size) == (3e-3, 128)
    assert train_config(parse("train", "--lr", "1e-2")).lr == 1e-2
    real = parse("train", "--data", "x.txt")
    assert train_config(real) == TrainConfig() and stage2_config(real).stage2_lr is None


def test_stage2_changes_reach_igrsr_not_its_sasrec_nor_lightrec():
    from igrsr.train import Stage2Config

    stage2 = Stage2Config(stage2_lr=1e-4, stage2_epochs=3)
    igrsr = make_spec("igrsr", {}, TrainConfig(lr=1e-3), stage2)
    assert (igrsr.train.lr, igrsr.train.epochs) == (1e-4, 3) and igrsr.backbone.train.lr == 1e-3
    assert make_spec("lightrec", {}, TrainConfig(lr=1e-3), stage2).train.lr == 1e-3
    assert make_spec("pop", {}, TrainConfig()).train.epochs == 1  # it only counts


def test_configs_are_frozen_and_models_take_config_or_options():
    import igrsr

    config = igrsr.SASRec.Config(d_model=32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 16
    assert igrsr.SASRec(20, config).config == igrsr.SASRec(20, d_model=32).config == config
    with pytest.raises(ConfigError, match="not an option of SASRecConfig"):
        igrsr.SASRec(20, mask_ratio=0.1)
