"""Each TrainConfig field says what it is once, and every command-line option explains itself.

The field metadata (``emorec.config.option``) is the one source of the flags' help, the
valid choices, the lists of fields a study may not tune or does not compare, the report's
hyperparameter columns and the optional features a value needs; these tests hold the
places that read it to that.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from emorec import models
from emorec.cli import build_parser
from emorec.cli.args import as_bool
from emorec.config import NOT_COMPARED, NOT_TUNABLE, REPORTED, TrainConfig, choices, parse_bool


def subcommand(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["train", "tune", "benchmark-all", "compare"])
def test_every_option_explains_itself_in_a_sentence(command):
    for action in subcommand(command)._actions:
        if isinstance(action, argparse._HelpAction):
            continue  # argparse's own
        assert action.help and action.help.rstrip().endswith("."), action.option_strings
        assert not action.help.startswith("default:"), action.option_strings


def test_train_help_is_each_fields_own_with_its_choices_and_default():
    # argparse reads "%" as a format: the CLI writes it "%%"
    flags = {a.dest: a.help.replace("%%", "%") for a in subcommand("train")._actions}
    for f in dataclasses.fields(TrainConfig):
        assert flags[f.name].startswith(f.metadata["help"]), f.name
        assert "Default: " in flags[f.name]
        for choice in choices(f.name) or ():
            assert str(choice) in flags[f.name], (f.name, choice)


def test_field_lists_derive_from_the_metadata():
    assert set(NOT_COMPARED) <= set(NOT_TUNABLE)  # what a study shares, it does not vary
    assert {"model", "dataset"} <= set(NOT_TUNABLE) - set(NOT_COMPARED)
    assert REPORTED == (
        "lr",
        "batch_size",
        "optimizer",
        "epochs",
        "dropout",
        "weight_decay",
        "image_size",
    )  # the report's column order


def test_every_needed_feature_is_declared_by_some_framework():
    declared = set().union(*models.FEATURES.values())
    needed = {f.metadata["needs"] for f in dataclasses.fields(TrainConfig)} - {None}
    assert needed <= declared and set(models.FEATURES) == set(models.FRAMEWORKS)


def test_a_feature_the_model_lacks_is_refused_naming_the_valid_values():
    with pytest.raises(ValueError) as err:
        TrainConfig(model="cnn_tf", tta="flip")
    assert str(err.value) == "tta flip needs a PyTorch model; cnn_tf is keras (valid for it: none)"
    # One training loop: every schedule, the time budget and init_from are every engine's.
    TrainConfig(model="cnn_tf", lr_schedule="onecycle", time_budget_min=5)


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("Yes", True), ("1", True), ("off", False), ("0", False), ("FALSE", False)],
)
def test_one_boolean_parser_for_the_config_and_the_flags(text, value):
    assert parse_bool(text) is as_bool(text) is value
    assert TrainConfig.from_mapping({"augment": text}).augment is value
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        TrainConfig.from_mapping({"augment": "maybe"})
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        as_bool("maybe")
