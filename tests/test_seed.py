"""``emorec benchmark-all --preset seed``: the seed study's comparison, every model's recipe
per dataset, the budgets and folds it names, and its figures beside emorec's."""

from __future__ import annotations

import pytest

import fixtures
from conftest import TINY
from emorec.cli import main
from emorec.config import TrainConfig
from emorec.search_space import load
from emorec.study.comparison import check_pairs, read_campaign


@pytest.fixture
def data(tmp_path):
    return {
        "fer2013": str(fixtures.write_fer2013_folders(tmp_path / "fer2013", n_train=15)),
        "ckplus": str(fixtures.write_ckplus48(tmp_path / "CK+48", subjects=6)),
    }


def test_the_seed_preset_resolves_every_models_recipe_on_every_dataset(data):
    seed = read_campaign("seed")
    assert set(seed.models) == {"cnn_torch", "cnn_tf", "sanet", "vgg16", "resnet50"}
    assert seed.datasets[0] == "fer2013"  # CK+ starts from the FER2013 champions
    pairs = check_pairs(list(seed.models), ["fer2013", "ckplus"], data, {}, seed)
    assert len(pairs) == 10
    for values, options in pairs:
        model, dataset = values["model"], values["dataset"]
        space = load(options.space_file)
        cfg = TrainConfig.from_mapping({**space.fixed, **values})
        assert cfg.time_budget_min == seed.budget_min[dataset]
        assert cfg.folds == (5 if dataset == "ckplus" else 0)
        assert options.study_name == f"seed-{model}-{dataset}"
        if dataset == "ckplus":  # fine-tuned from its own architecture's FER2013 champion
            assert cfg.init_from == f"models:/emorec-{model}-fer2013@champion"
    assert seed.reference["ckplus"]["sanet"]["accuracy"] == 0.98


def test_an_unknown_campaign_names_the_valid_ones(capsys):
    assert main(["benchmark-all", "--preset", "nope", "--data-dir", "ckplus=/tmp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown campaign 'nope'; valid: seed" in err[0], err


def test_benchmark_all_seed_runs_fer2013_then_ckplus_and_sets_the_seeds_figures_beside(
    data, tmp_path, capsys
):
    sets = [f"{k}={v}" for k, v in TINY.items() if k != "image_size"] + ["image_size=16"]
    code = main(
        [
            "benchmark-all",
            "--preset",
            "seed",
            "--models",
            "cnn_torch",
            "--data-dir",
            f"fer2013={data['fer2013']}",
            "--data-dir",
            f"ckplus={data['ckplus']}",
            "--out",
            str(tmp_path / "report"),
            "--no-plots",
            "--set",
            *sets,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    table = (tmp_path / "report" / "results.md").read_text()
    ck = next(line for line in table.splitlines() if "| ckplus |" in line)
    assert "5-fold CV" in ck and "±" in ck and "0.95" in ck  # the seed's figure beside
    assert "| fer2013 |" in table and "reference accuracy" in table
