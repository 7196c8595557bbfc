"""Parameters come from the notebooks' parameters cells and are checked before anything runs."""

from __future__ import annotations

import pytest

from retrain_lib.classifier import TrainConfig
from retrain_lib.errors import InputError
from retrain_lib.parameters import STAGES, check_parameters, parse_assignments, stage_defaults, stage_parameters


def test_every_stage_declares_job_dir_and_typed_parameters():
    for stage in STAGES:
        specs = stage_parameters(stage)
        assert "job_dir" in specs
        assert all(spec.type_name in ("int", "float", "str", "bool") for spec in specs.values()), stage


def test_train_notebook_defaults_build_both_configs():
    from dataclasses import fields

    from retrain_lib.detector import DetectorConfig

    defaults = stage_defaults("02_train")
    config = TrainConfig(**{f.name: defaults[f.name] for f in fields(TrainConfig)})
    assert config.input_size == 160 and config.fine_tune is True
    detector = DetectorConfig(**{f.name: defaults[f.name if f.name == "seed" else f"detection_{f.name}"]
                                 for f in fields(DetectorConfig)})
    assert detector.input_size == 320


def test_dashboard_balanced_preset_is_the_notebook_defaults():
    from retrain_lib.dashboard import PRESETS

    defaults = stage_defaults("02_train")
    assert PRESETS["Balanced"] == {key: defaults[key] for key in PRESETS["Balanced"]}


def test_command_line_strings_are_coerced():
    checked = check_parameters(parse_assignments(["head_epochs=3", "fine_tune=false", "dropout=0.3",
                                                  "cache_layer=block_12_add"]))
    assert checked == {"head_epochs": 3, "fine_tune": False, "dropout": 0.3, "cache_layer": "block_12_add"}


@pytest.mark.parametrize(("values", "fragments"), [
    ({"epochs": "3"}, ["parameter 'epochs'", "not a parameter of any stage", "head_epochs"]),
    ({"head_epochs": "three"}, ["parameter 'head_epochs'", "'three'", "not a int", "from 1 to 500"]),
    ({"head_epochs": "-1"}, ["'-1'", "outside the range 1 to 500"]),
    ({"fine_tune": "maybe"}, ["not true or false"]),
    ({"input_size": "512"}, ["outside the range 96 to 224"]),
    ({"task": "segmentation"}, ["not an allowed choice", "'classification'"]),
    ({"dropout": 1.5}, ["outside the range 0.0 to 0.9"]),
])
def test_bad_parameters_are_refused(values, fragments):
    with pytest.raises(InputError) as err:
        check_parameters(values)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_all_bad_parameters_reported_together():
    with pytest.raises(InputError) as err:
        check_parameters({"nope": "1", "head_epochs": "0", "batch_size": "x"})
    assert len(err.value.problems) == 3


def test_malformed_assignment():
    with pytest.raises(InputError, match="key=value"):
        parse_assignments(["epochs"])
