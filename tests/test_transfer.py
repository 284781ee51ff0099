"""``init_from``: start from a logged or registered model's weights (emorec.transfer).

The backbone is copied whole; of the classifier's last layer, the rows of the classes
both models share are carried over by name, a new class starts fresh. The run records
its parent (tags, and the source's logged model as a run input). Bad input is one line
before any run opens.
"""

import mlflow
import pytest
import torch

import fixtures
from conftest import TINY
from emorec.cli import main
from emorec.config import TrainConfig
from emorec.engines import get_engine
from emorec.training import train


def test_start_from_copies_the_backbone_and_the_rows_of_shared_classes():
    from emorec.transfer import Source

    engine = get_engine("torch")
    source_classes = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    source_model = engine.build(TrainConfig(seed=1), num_classes=7)
    target_classes = ["contempt", "happiness", "anger"]  # contempt is new to the source
    model = engine.build(TrainConfig(seed=2), num_classes=3)
    fresh = model.head[-1].weight.detach().clone()
    rows = Source("runs:/x/model", "x", source_model, source_classes).rows(target_classes)
    assert rows == [(1, 3), (2, 0)]

    engine.start_from(model, source_model, rows)
    source_state, state = source_model.state_dict(), model.state_dict()
    last_layer = f"head.{len(model.head) - 1}."
    for key, value in state.items():
        if not key.startswith(last_layer):  # all but the last layer: the source's
            assert torch.equal(value, source_state[key]), key
    last = model.head[-1]
    assert torch.equal(last.weight[1], source_model.head[-1].weight[3])  # happiness
    assert torch.equal(last.weight[2], source_model.head[-1].weight[0])  # anger
    assert torch.equal(last.bias[2], source_model.head[-1].bias[0])
    assert torch.equal(last.weight[0], fresh[0])  # contempt: untouched, fresh


def test_a_registered_model_starts_a_run_that_records_its_parent(tmp_path):
    source = train(TrainConfig(**TINY))
    version = mlflow.register_model(f"runs:/{source.run_id}/emotion_model", "emorec-src")
    mlflow.MlflowClient().set_registered_model_alias("emorec-src", "champion", version.version)
    folder = fixtures.write_folder_set(
        tmp_path / "faces",
        classes=("angry", "happy", "sad"),
        n_per_class=6,
        corrupt=False,
        extras=False,
    )
    cfg = TrainConfig(
        **{**TINY, "epochs": 2},
        dataset="folder",
        data_dir=str(folder),
        init_from="models:/emorec-src@champion",
        freeze_epochs=2,
    )
    result = train(cfg)

    run = mlflow.get_run(result.run_id)
    assert run.data.tags["init_from.uri"] == "models:/emorec-src@champion"
    assert run.data.tags["init_from.run_id"] == source.run_id
    assert run.data.tags["init_from.model_name"] == "emorec-src"
    assert run.data.tags["init_from.model_version"] == str(version.version)
    assert run.data.params["init_from"] == "models:/emorec-src@champion"
    if version.model_id:  # MLflow's own lineage: the source's logged model is an input
        assert version.model_id in [m.model_id for m in run.inputs.model_inputs]
    # The backbone was frozen for both epochs: its weights are still the source's.
    trained, parent = result.model.state_dict(), source.model.state_dict()
    convs = [k for k in parent if k.startswith("features.") and k.endswith(".weight")]
    assert convs and all(torch.equal(trained[k], parent[k]) for k in convs)


@pytest.fixture
def source_run(tmp_path):
    return train(TrainConfig(**TINY)).run_id


@pytest.mark.parametrize(
    "case",
    [
        "unknown run",
        "unknown registered model",
        "keras model",
        "keras architecture",
        "other architecture",
        "other channel count",
    ],
)
def test_bad_init_from_is_one_line_before_any_run(case, source_run, capsys):
    if case == "keras model":  # a Keras model's weights into a PyTorch architecture
        source_run = train(TrainConfig(**{**TINY, "model": "cnn_tf"})).run_id
    flags = {
        "unknown run": ["--init-from", "runs:/0123456789abcdef/model"],
        "unknown registered model": ["--init-from", "models:/no-such-model@champion"],
        "keras model": ["--init-from", f"runs:/{source_run}/model"],
        "keras architecture": ["--model", "cnn_tf", "--init-from", f"runs:/{source_run}/model"],
        "other architecture": ["--model", "sanet", "--init-from", f"runs:/{source_run}/model"],
        "other channel count": ["--channels", "3", "--init-from", f"runs:/{source_run}/model"],
    }[case]
    expected = {
        "unknown run": "init_from: cannot load",
        "unknown registered model": "init_from: cannot load",
        "keras model": "is a keras model (cnn_tf); cnn_torch",
        "keras architecture": "is a torch model (cnn_torch); cnn_tf is keras",
        "other architecture": "is a cnn_torch model, not sanet",
        "other channel count": "takes 1-channel images",
    }[case]
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    argv = [
        "train",
        "--epochs",
        "1",
        "--samples",
        "70",
        "--image-size",
        "16",
        "--system-metrics",
        "false",
        "--progress",
        "false",
        *flags,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert "Traceback" not in err[0]
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before
