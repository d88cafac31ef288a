"""``igrsr study``: noisy inputs with intact targets, the tables, end to end and resumed."""

import json
from pathlib import Path

import numpy as np
import pytest

from igrsr.cli import main
from igrsr.data import leave_one_out, make_synthetic
from igrsr.study import paired_bootstrap, summarize, with_noisy_inputs
from igrsr.study.plan import study_spec
from igrsr.train import Stage2Config, TrainConfig

# Small models and batches: the study tests check the plumbing, not the models.
TINY_MODELS = ["--no-progress", "--d-model", "16", "--num-layers", "1", "--max-len", "10", "--batch-size", "64"]


@pytest.fixture(scope="module")
def data():
    return make_synthetic(num_users=200, num_items=80, seq_len=(6, 20), seed=5)


@pytest.fixture
def data_file(data, tmp_path):
    """``data`` as a dataset file, one user per line."""
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(data.sequences)))
    return path


def test_noise_replaces_inputs_only_and_keeps_every_target(data):
    clean, noisy = leave_one_out(data), leave_one_out(with_noisy_inputs(data, 0.2, seed=7))
    np.testing.assert_array_equal(noisy.valid_target, clean.valid_target)
    np.testing.assert_array_equal(noisy.test_target, clean.test_target)
    changed = replaced = 0
    for clean_train, noisy_train, noisy_test_history, target in zip(
        clean.train, noisy.train, noisy.test_history, noisy.valid_target
    ):
        assert len(noisy_train) == len(clean_train)
        differs = int((noisy_train != clean_train).sum())
        assert differs <= np.floor(0.2 * len(clean_train) + 0.5)  # a draw may repeat the original item
        changed, replaced = changed + differs, replaced + len(clean_train)
        # The test history is the (noisy) training part, then the clean validation target.
        np.testing.assert_array_equal(noisy_test_history, np.append(noisy_train, target))
    assert 0.15 < changed / replaced < 0.25


def test_noise_is_reproducible_from_its_seed_and_zero_noise_changes_nothing(data):
    first, again, other = (with_noisy_inputs(data, 0.3, seed) for seed in (1, 1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(first.sequences, again.sequences))
    assert not all(np.array_equal(a, b) for a, b in zip(first.sequences, other.sequences))
    assert first.name == "synthetic-noise30"
    clean = with_noisy_inputs(data, 0.0, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(clean.sequences, data.sequences))


def test_summary_is_mean_and_sample_std_over_seeds():
    metrics = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")
    records = [
        {"experiment": "main", "label": "sasrec", "model": "sasrec", "noise": 0.0, "seed": seed,
         "test": dict.fromkeys(metrics, value), "valid": dict.fromkeys(metrics, 0.5),
         "best_epoch": seed + 2, "epochs_run": 5, "stopped": "early", "train_seconds": 60.0 * seed}
        for seed, value in ((1, 0.1), (2, 0.3))
    ]  # fmt: skip
    (row,) = summarize(records)
    assert row["seeds"] == [1, 2]
    assert row["epochs"] == ["3/5 early", "4/5 early"] and row["train_minutes"] == pytest.approx(1.5)
    assert row["test_mean"]["NDCG@10"] == pytest.approx(0.2)
    assert row["test_std"]["NDCG@10"] == pytest.approx(np.std([0.1, 0.3], ddof=1))


def test_quick_study_runs_end_to_end_and_a_second_call_reuses_every_run(data_file, tmp_path, capsys):
    path, out = data_file, tmp_path / "study"
    args = ["study", "--quick", "--data", str(path), "--users", "100", "--out", str(out), "--epochs", "1",
            *TINY_MODELS, "--reasoning-steps", "1", "--num-codebooks", "2", "--codebook-size", "8"]  # fmt: skip
    assert main(args) == 0
    first_output = capsys.readouterr().out
    raw = json.loads((out / "study.json").read_text())
    assert raw["complete"] and raw["plan"]["name"] == "quick" and raw["data"]["users"] == 100
    experiments = {record["experiment"] for record in raw["records"]}
    assert experiments == {"main", "noise", "ablation", "sweep-num_intents", "sweep-num_prefix"}
    assert {row["label"] for row in raw["summary"] if row["experiment"] == "main"} == {
        "pop", "sasrec", "bert4rec", "ssept", "lightrec", "rearec-erl", "rearec-prl", "igrsr"
    }  # fmt: skip
    assert {record["noise"] for record in raw["records"]} == {0.0, 0.2}
    report = (out / "report.md").read_text()
    sections = (
        "## Against the paper's claims",
        "## Main results",
        "## Noise robustness",
        "## Ablations of IGR-SR",
        "## Sensitivity to m and k",
    )
    for section in sections:
        assert section in report
    assert (out / "noise.png").stat().st_size > 0 and (out / "sweeps.png").stat().st_size > 0
    assert {row["versus"] for row in raw["paired"]} == {"pop", "sasrec", "bert4rec", "ssept", "lightrec",
                                                        "rearec-erl", "rearec-prl", "w/o LID",
                                                        "w/o cross-attention", "w/o ICR"}  # fmt: skip
    assert all(row["users"] == 100 and row["metric"] == "NDCG@10" for row in raw["paired"])
    assert "igrsr against each model and ablation, user by user" in report
    # The ranks are recomputed from each run's best.pt: they must give the recorded test metric.
    recorded = {
        row["label"]: row["test_mean"]["NDCG@10"] for row in raw["summary"] if row["experiment"] in ("main", "ablation")
    }
    for row in raw["paired"]:
        expected = 100 * (recorded["igrsr"] / recorded[row["versus"]] - 1)
        assert row["gain_percent"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert "tiny-noise20" in {p.name for p in (out / "runs").iterdir()}  # noisy data: its own runs
    results = sorted((out / "runs").glob("*/*/results.json"))
    modified = {p: p.stat().st_mtime_ns for p in results}
    trained = first_output.count(" epoch 1:")
    assert trained == len(results)

    assert main(args) == 0
    second_output = capsys.readouterr().out
    assert " epoch 1:" not in second_output and "reusing the finished run" in second_output
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/*/results.json")} == modified
    assert json.loads((out / "study.json").read_text())["summary"] == raw["summary"]


def test_study_runs_only_the_parts_asked_for_with_stage2_settings_of_its_own(data_file, tmp_path):
    path, out = data_file, tmp_path / "study"
    args = ["study", "--data", str(path), "--users", "60", "--out", str(out), "--seeds", "1", "--epochs", "2",
            "--stage2-epochs", "1", "--stage2-lr", "5e-4", "--models", "sasrec,lightrec,igrsr", "--noise", "0.3",
            "--noise-models", "sasrec", "--ablations", "", "--intents", "", "--prefixes", "2", *TINY_MODELS,
            "--every-window"]  # fmt: skip
    assert main(args) == 0
    raw = json.loads((out / "study.json").read_text())
    assert raw["plan"]["noise_fractions"] == [0.0, 0.3] and raw["plan"]["noise_models"] == ["sasrec"]
    assert {(r["experiment"], r["label"], r["noise"]) for r in raw["records"]} == {
        ("main", "sasrec", 0.0), ("main", "lightrec", 0.0), ("main", "igrsr", 0.0), ("noise", "sasrec", 0.0),
        ("noise", "sasrec", 0.3),
        ("sweep-num_prefix", "2", 0.0),
    }  # fmt: skip
    for record in raw["records"]:
        train = json.loads((Path(record["run_dir"]) / "results.json").read_text())["train"]
        stage2 = record["model"] == "igrsr"  # LightRec, also over a SASRec, takes the common settings
        assert (train["epochs"], train["lr"], train["every_window"]) == ((1, 5e-4, True) if stage2 else (2, 1e-3, True))
    report = (out / "report.md").read_text()
    assert "## Ablations of IGR-SR" not in report and "IGR-SR over its SASRec: lr 0.0005, epoch limit 1" in report
    assert "every max_len window of each history" in report


def test_study_tunes_each_models_learning_rate_on_validation_and_uses_it_everywhere(data_file, tmp_path):
    path, out = data_file, tmp_path / "study"
    # --lr and --stage2-lr are outside the grid: a run that ignored the tuning would show them.
    args = ["study", "--data", str(path), "--users", "60", "--out", str(out), "--seeds", "2", "--epochs", "2",
            "--stage2-epochs", "1", "--lr", "3e-4", "--stage2-lr", "2e-4", "--tune-lr", "1e-2, 1e-3",
            "--models", "pop,igrsr,sasrec", "--noise", "0.3", "--noise-models", "igrsr", "--ablations", "icr",
            "--intents", "", "--prefixes", "", *TINY_MODELS]  # fmt: skip
    assert main(args) == 0
    raw = json.loads((out / "study.json").read_text())
    assert raw["plan"]["learning_rates"] == [1e-3, 1e-2]
    tuning = [record for record in raw["records"] if record["experiment"] == "tuning"]
    assert [(r["model"], r["lr"], r["seed"]) for r in tuning] == [
        ("sasrec", 1e-3, 42),
        ("sasrec", 1e-2, 42),
        ("igrsr", 1e-3, 42),
        ("igrsr", 1e-2, 42),
    ]  # SASRec first, as IGR-SR is tuned over it; popularity has no learning rate
    chosen = {}
    for record in tuning:
        best = chosen.get(record["model"])
        if best is None or record["valid"]["NDCG@10"] > best["valid"]["NDCG@10"]:
            chosen[record["model"]] = record
    assert raw["learning_rates"] == {model: record["lr"] for model, record in chosen.items()}

    def results(record):
        return json.loads((Path(record["run_dir"]) / "results.json").read_text())

    for record in raw["records"]:
        trained = results(record)
        if record["model"] == "pop":
            assert trained["train"]["epochs"] == 1
            continue
        if record["experiment"] != "tuning":
            assert record["lr"] == trained["train"]["lr"] == raw["learning_rates"][record["model"]]
        if record["model"] == "igrsr":
            # Every IGR-SR run is over the SASRec of SASRec's chosen rate, on its own data.
            backbone = json.loads((Path(trained["backbone_run"]) / "results.json").read_text())
            assert backbone["train"]["lr"] == raw["learning_rates"]["sasrec"]
            assert backbone["train"]["seed"] == record["seed"] and backbone["data"] == trained["data"]
    main_runs = {(r["model"], r["seed"]): r["run_dir"] for r in raw["records"] if r["experiment"] == "main"}
    for model, record in chosen.items():  # the chosen rate's tuning run is the first seed's main run
        assert main_runs[model, 42] == record["run_dir"]
    report = (out / "report.md").read_text()
    assert "## Learning rates, chosen on validation" in report
    assert "learning rate chosen per model on validation" in report and "lr 0.0003" not in report


@pytest.mark.parametrize(
    "option, value, message",
    [("--noise", "0.2,x", "--noise: expected"), ("--noise", "1.5", "--noise: fractions"),
     ("--noise-models", "sasrec,nope", "--noise-models: unknown"), ("--intents", "2.5", "--intents: expected"),
     ("--ablations", "lid,nope", "--ablations: unknown"), ("--tune-lr", "1e-3,x", "--tune-lr: expected"),
     ("--tune-lr", "0", "--tune-lr: learning rates must be > 0")],
)  # fmt: skip
def test_study_rejects_bad_plan_options_naming_the_option(option, value, message, capsys):
    assert main(["study", option, value]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--seeds", "--users"])
def test_study_counts_must_be_positive(option, capsys):
    assert main(["study", option, "0"]) == 2
    assert f"{option} must be >= 1, got 0" in capsys.readouterr().err


def test_study_plan_options_allow_spaces_after_the_commas():
    from igrsr.cli import build_parser
    from igrsr.cli.study import study_plan

    args = build_parser().parse_args(
        ["study", "--models", "sasrec, igrsr", "--ablations", "lid, icr", "--noise", "0.1, 0.2", "--intents", "1, 3"]
    )
    plan = study_plan(args)
    assert plan.models == ("sasrec", "igrsr") and plan.ablations == ("IGR-SR", "w/o LID", "w/o ICR")
    assert plan.noise_fractions == (0.0, 0.1, 0.2) and plan.intent_counts == (1, 3)
    assert study_plan(build_parser().parse_args(["study", "--noise", ""])).noise_fractions == ()


METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")


STUDY_TRAINING = TrainConfig(lr=1e-3, epochs=5)
STUDY_STAGE2 = Stage2Config(stage2_epochs=1)


def record(experiment, label, ndcg, noise=0.0, hr=None, seed=1, model=None, options=None):
    """A study record whose test metrics are all ``ndcg`` (HR@10: ``hr`` if given), of a run with
    the model ``options`` over d = 16."""
    test = {**dict.fromkeys(METRICS, ndcg), **({"HR@10": hr} if hr is not None else {})}
    model = model or label
    spec = study_spec(model, {"d_model": 16, **(options or {})}, STUDY_TRAINING, STUDY_STAGE2, {}, seed)
    return {"experiment": experiment, "label": label, "model": model, "noise": noise, "seed": seed,
            "settings": spec.settings(seed=False), "run_dir": f"gone/{model}-{seed}", "overrides": {},
            "test": test, "valid": dict.fromkeys(METRICS, 0.5), "best_epoch": 1, "epochs_run": 2,
            "stopped": "early", "train_seconds": 1.0}  # fmt: skip


def study_of(records, seeds=(1,)):
    return {"records": records, "summary": summarize(records), "seeds": list(seeds)}


def test_report_sets_the_measured_numbers_against_the_papers_claims():
    from igrsr.study.report import claims_section

    records = [record("main", "pop", 0.5), record("main", "sasrec", 0.10), record("main", "ssept", 0.12),
               record("main", "igrsr", 0.132), record("noise", "sasrec", 0.10), record("noise", "sasrec", 0.08, 0.2),
               record("noise", "igrsr", 0.132), record("noise", "igrsr", 0.1188, 0.2),
               record("ablation", "IGR-SR", 0.13, hr=0.2, model="igrsr"),
               record("ablation", "w/o ICR", 0.12, hr=0.19, model="igrsr"),
               record("sweep-num_intents", "1", 0.10, model="igrsr"),
               record("sweep-num_intents", "3", 0.12, model="igrsr")]  # fmt: skip
    text = "\n".join(claims_section(study_of(records)))
    assert "here +10.0% on average" in text and "vs ssept" in text  # pop is not a baseline to beat
    assert "here IGR-SR 10.0%; sasrec 20.0%" in text
    assert "at m = 3 of [1, 3]" in text and "w/o ICR +5.0%" in text and "1 seed(s)" in text
    assert claims_section(study_of([record("main", "sasrec", 0.1)], seeds=(1, 2, 3))) == []


def test_gains_and_ablation_losses_compare_the_seeds_both_sides_have():
    """In a merged study a baseline or an ablation may have one seed where IGR-SR has three."""
    from igrsr.study.report import ablation_table, claims_section

    records = [record("main", "igrsr", value, seed=seed) for seed, value in ((1, 0.10), (2, 0.11), (3, 0.12))]
    records += [record("main", "rearec-erl", 0.105, seed=1)]  # table means: IGR-SR 0.11 ahead of 0.105
    records += [record("ablation", "IGR-SR", value, seed=seed, model="igrsr") for seed, value in ((1, 0.2), (2, 0.3))]
    records += [record("ablation", "w/o ICR", 0.18, seed=1, model="igrsr")]
    raw = study_of(records, seeds=(1, 2, 3))
    text = "\n".join(claims_section(raw))
    assert "here -4.8% on average" in text  # seed 1: 0.10 against 0.105
    assert "w/o ICR +10.0%" in text  # seed 1: 0.18 against 0.2, not against the mean 0.25
    assert "| w/o ICR | 1 | 0.1800 ± 0.0000 | 0.1800 ± 0.0000 | -10.0% | -10.0% |" in "\n".join(ablation_table(raw))


def test_paired_bootstrap_gives_the_gain_and_an_interval_over_users():
    rng = np.random.default_rng(0)
    theirs = rng.random(5000)
    same = paired_bootstrap(theirs, theirs.copy())
    assert same["gain_percent"] == 0 and same["ci95_percent"] == [0, 0] and same["users"] == 5000
    better = paired_bootstrap(theirs * 1.1 + 0.01 * rng.standard_normal(5000), theirs, resamples=500)
    low, high = better["ci95_percent"]
    assert better["gain_percent"] == pytest.approx(10, abs=0.2) and low < better["gain_percent"] < high
    assert 9 < low and high < 11  # a consistent per-user gain is resolved tightly
    noisy = paired_bootstrap(rng.random(5000), theirs, resamples=500)  # unrelated: wide, spans 0
    assert noisy["ci95_percent"][0] < 0 < noisy["ci95_percent"][1]
    undefined = paired_bootstrap(theirs, np.zeros(5000), resamples=10)
    assert np.isnan(undefined["gain_percent"]) and undefined["undefined_resamples"] == 10
    # One hit among few users: resamples that miss it have no relative difference and are left
    # out of the interval instead of turning it into NaN.
    rare = paired_bootstrap(np.ones(20), np.eye(20)[0], resamples=200)
    assert rare["gain_percent"] == pytest.approx(1900) and 0 < rare["undefined_resamples"] < 200
    assert np.isfinite(rare["ci95_percent"]).all()
    with pytest.raises(ValueError, match="equal non-empty"):
        paired_bootstrap(theirs, theirs[:10])


def test_noise_table_and_curves_carry_the_seed_spread():
    from igrsr.study.report import noise_curves, noise_table

    values = {(0.0, 1): 0.09, (0.0, 2): 0.11, (0.2, 1): 0.06, (0.2, 2): 0.10}
    raw = study_of([record("noise", "sasrec", v, noise, seed=seed) for (noise, seed), v in values.items()], (1, 2))
    assert noise_curves(raw) == {
        "sasrec": [(0.0, pytest.approx(0.10), pytest.approx(np.std([0.09, 0.11], ddof=1))),
                   (0.2, pytest.approx(0.08), pytest.approx(np.std([0.06, 0.10], ddof=1)))]
    }  # fmt: skip
    assert "| sasrec | 2 | 0.1000 ± 0.0141 | 0.0800 ± 0.0283 | -20.0% |" in "\n".join(noise_table(raw))


def test_noise_drop_compares_the_seeds_that_have_both_runs():
    """A merged study may have a noise level with fewer seeds: its drop is against their clean runs."""
    from igrsr.study.report import noise_drops, noise_table

    values = {(0.0, 1): 0.08, (0.0, 2): 0.12, (0.2, 1): 0.06}
    raw = study_of([record("noise", "sasrec", v, noise, seed=seed) for (noise, seed), v in values.items()], (1, 2))
    assert noise_drops(raw) == {"sasrec": pytest.approx(25.0)}  # not 0.06 against the mean 0.10
    assert "| sasrec | 2/1 | 0.1000 ± 0.0283 | 0.0600 ± 0.0000 | -25.0% |" in "\n".join(noise_table(raw))
    # Another study's model at another fraction: its own column, "–" where a model has no run.
    raw = study_of(raw["records"] + [record("noise", "igrsr", v, noise) for noise, v in ((0.0, 0.1), (0.3, 0.05))])
    table = "\n".join(noise_table(raw))
    assert "| model | seeds | NDCG@10 @ 0 | NDCG@10 @ 0.2 | NDCG@10 @ 0.3 | change @ 0.2 | change @ 0.3 |" in table
    assert "| sasrec | 2/1/– | 0.1000 ± 0.0283 | 0.0600 ± 0.0000 | – | -25.0% | – |" in table
    assert "| igrsr | 1/–/1 | 0.1000 ± 0.0000 | – | 0.0500 ± 0.0000 | – | -50.0% |" in table


def study_json(records, seed, **changes):
    """A study.json of ``records`` (one seed) as ``igrsr study`` writes it."""
    train = TrainConfig(seed=seed, lr=1e-3, epochs=5).to_dict()
    return {"schema": 2, "complete": True, "plan": {"name": "full"}, "data": {"fingerprint": "f00d", "name": "tiny"},
            "seeds": [seed], "noise_seed": 0, "options": {"d_model": 16}, "train": train,
            "stage2_changes": {"epochs": 1}, "learning_rates": {}, "records": records, "paired": [],
            "summary": summarize(records), **changes}  # fmt: skip


def seed_study(seed, ndcg, options=None, **changes):
    records = [record("main", model, ndcg, seed=seed, options=options) for model in ("sasrec", "lightrec", "igrsr")]
    return study_json(records, seed, **changes)


def test_merged_studies_give_the_tables_over_all_their_seeds():
    from igrsr.study import merge_studies

    first, second = seed_study(1, 0.1), seed_study(2, 0.3, complete=False)
    first["paired"] = [{"model": "igrsr", "versus": "sasrec", "seed": 1, "metric": "NDCG@10", "gain_percent": 1.0}]
    second["paired"] = [{"model": "igrsr", "versus": "sasrec", "seed": 2, "metric": "NDCG@10", "gain_percent": 2.0}]
    merged = merge_studies({"b": second, "a": first})
    assert merged["seeds"] == [1, 2] and merged["train"]["seed"] == 1 and merged["merged_from"] == ["b", "a"]
    assert not merged["complete"]  # one of them was interrupted
    assert merged["summary"] == summarize(second["records"] + first["records"])
    assert {row["label"]: row["seeds"] for row in merged["summary"]} == dict.fromkeys(["sasrec", "lightrec", "igrsr"],
                                                                                      [2, 1])  # fmt: skip
    assert merged["paired"] == first["paired"]  # the lowest seed's comparisons
    # The same run recorded by two studies counts once.
    assert merge_studies({"a": first, "again": first})["summary"] == first["summary"]
    kept = merge_studies({"a": first, "b": second}, models=["sasrec"])
    assert [row["label"] for row in kept["summary"]] == ["sasrec"] and kept["paired"] == []


@pytest.mark.parametrize(
    "change, options, models, message",
    [
        ({"data": {"fingerprint": "beef"}}, None, None, "b differs from a in data 'beef' instead of 'f00d'"),
        ({"train": TrainConfig(epochs=9).to_dict()}, None, None, "train.epochs 9 instead of 5"),
        ({"stage2_changes": {"epochs": 3}}, None, None, "stage2_changes.epochs 3 instead of 1"),
        # LightRec's option: its cell refuses to mix; SASRec's and IGR-SR's do not use it.
        ({}, {"codebook_start": "kmeans"}, None,
         r"lightrec \(main, noise 0\) of b trained with other settings than in a: config.codebook_start 'kmeans'"),
        ({}, {"d_model": 32}, ["igrsr"], r"igrsr .* backbone.config.d_model 32 instead of 16"),
    ],
)  # fmt: skip
def test_merging_refuses_runs_of_other_settings_naming_the_difference(change, options, models, message):
    from igrsr.study import merge_studies

    with pytest.raises(ValueError, match=message):
        merge_studies({"a": seed_study(1, 0.1), "b": {**seed_study(2, 0.3, options), **change}}, models)


def test_merging_keeps_a_lightrec_of_other_options_out_when_asked_and_refuses_a_changed_result():
    from igrsr.study import merge_studies

    other_lightrec = seed_study(2, 0.3, {"codebook_start": "kmeans"})
    merged = merge_studies({"a": seed_study(1, 0.1), "b": other_lightrec}, models=["sasrec", "igrsr"])
    assert {row["label"]: row["seeds"] for row in merged["summary"]} == {"sasrec": [1, 2], "igrsr": [1, 2]}
    with pytest.raises(ValueError, match=r"sasrec \(main, noise 0\): seed 1 has other test results in b"):
        merge_studies({"a": seed_study(1, 0.1), "b": seed_study(1, 0.2)})
    merged = merge_studies({"a": seed_study(1, 0.1), "b": seed_study(1, 0.2)}, keep_first=True)
    assert merged["summary"] == seed_study(1, 0.1)["summary"]
    assert merged["replaced_by_first"][0] == "sasrec (main, noise 0), seed 1, of b"


def test_merging_can_take_some_models_of_one_study_only():
    from igrsr.study import merge_studies

    retrained = seed_study(1, 0.2, {"codebook_start": "kmeans"})  # its LightRec differs
    with pytest.raises(ValueError, match="config.codebook_start"):  # a's LightRec is in too
        merge_studies({"a": seed_study(1, 0.1), "b": retrained}, only={"b": ["lightrec"]})
    first = seed_study(1, 0.1)
    first["paired"] = [
        {"model": "igrsr", "versus": label, "seed": 1, "metric": "NDCG@10"} for label in ("sasrec", "lightrec")
    ]
    merged = merge_studies({"a": first, "b": retrained}, only={"a": ["sasrec", "igrsr"], "b": ["lightrec"]})
    assert {row["label"]: row["test_mean"]["NDCG@10"] for row in merged["summary"]} == pytest.approx(
        {"sasrec": 0.1, "igrsr": 0.1, "lightrec": 0.2}
    )
    # a's comparison with its own LightRec says nothing of b's, which the merged table shows
    assert [row["versus"] for row in merged["paired"]] == ["sasrec"]


def test_report_of_one_seed_per_study_equals_the_study_of_both_seeds(data_file, tmp_path, capsys):
    """Seeds trained as separate jobs (one ``--seed`` each) make the report of one two-seed study."""
    common = ["--data", str(data_file), "--users", "60", "--epochs", "2", "--stage2-epochs", "1", "--models",
              "pop,sasrec,igrsr", "--noise", "0.3", "--noise-models", "sasrec", "--ablations", "", "--intents", "",
              "--prefixes", "", *TINY_MODELS]  # fmt: skip
    runs = tmp_path / "runs"
    runs.mkdir()
    for name, seeds in (("seed0", ["--seed", "0", "--seeds", "1"]), ("seed1", ["--seed", "1", "--seeds", "1"]),
                        ("both", ["--seed", "0", "--seeds", "2"])):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "runs").symlink_to(runs, target_is_directory=True)  # "both" reuses every run
        assert main(["study", "--out", str(tmp_path / name), *seeds, *common]) == 0
    assert main(["report", str(tmp_path / "seed1"), str(tmp_path / "seed0" / "study.json"), "--out",
                 str(tmp_path / "merged")]) == 0  # fmt: skip
    assert "seeds [0, 1]" in capsys.readouterr().out
    merged, both = (json.loads((tmp_path / name / "study.json").read_text()) for name in ("merged", "both"))
    key = ("experiment", "label", "noise")
    rows = {name: sorted(raw["summary"], key=lambda row: tuple(row[k] for k in key)) for name, raw in
            (("merged", merged), ("both", both))}  # fmt: skip
    for row in rows["merged"]:
        row["seeds"] = sorted(row["seeds"])
    for merged_row, both_row in zip(rows["merged"], rows["both"]):
        assert merged_row["seeds"] == both_row["seeds"] == [0, 1]
        assert merged_row["test_mean"] == pytest.approx(both_row["test_mean"])
        assert merged_row["test_std"] == pytest.approx(both_row["test_std"])
    assert len(rows["merged"]) == len(rows["both"])
    assert merged["paired"] == both["paired"]  # seed 0's, the first seed of both
    report = (tmp_path / "merged" / "report.md").read_text()
    assert "Merged (`igrsr report`) from" in report and "## Noise robustness" in report
    assert (tmp_path / "merged" / "noise.png").stat().st_size > 0
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "neither a study directory nor a study.json" in capsys.readouterr().err
