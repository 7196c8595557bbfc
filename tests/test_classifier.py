"""Training on tiny generated data: determinism, the warm start of fine-tuning, the exported model's contract."""

from __future__ import annotations

import numpy as np
import pytest

from retrain_lib.classifier import TrainConfig, build_classifier, train_classifier
from retrain_lib.stages.upload import run_upload
from retrain_lib.synthetic import make_shapes_classification
from retrain_lib.weights import choose_mobilenet_v2_weights

pytestmark = pytest.mark.slow
TINY = TrainConfig(input_size=96, head_epochs=3, fine_tune=True, fine_tune_epochs=2, head_learning_rate=1e-3,
                   fine_tune_learning_rate=1e-4, batch_size=16, augment_views=1, cache_layer="block_12_add",
                   dropout=0.2, label_smoothing=0.1, mixup=0.2, patience=5, seed=3,
                   fine_tune_batchnorm=False, int8_aware=True, representative_images=20)


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    data = make_shapes_classification(root / "data", images_per_class=12, size=64, seed=1)
    return run_upload(root / "job", data).dataset


def test_same_seed_same_metrics_on_cpu(shapes_dataset):
    weights = choose_mobilenet_v2_weights(allow_download=False)
    first = train_classifier(shapes_dataset, TINY, weights)
    second = train_classifier(shapes_dataset, TINY, weights)
    assert first.history["val_loss"] == second.history["val_loss"]
    assert first.phase_epochs == {"head": 3, "fine_tune": 2}
    assert first.history["phase"] == ["head"] * 3 + ["fine_tune"] * 2


def test_model_takes_raw_rgb_and_outputs_probabilities():
    model, backbone, _ = build_classifier(4, TINY, choose_mobilenet_v2_weights(allow_download=False))
    assert model.input_shape == (None, 96, 96, 3)
    out = model.predict(np.full((2, 96, 96, 3), 255.0, np.float32), verbose=0)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert backbone.get_layer("Conv1").get_weights()[0].std() > 0.01


def test_pretrained_weights_are_found_in_shared():
    choice = choose_mobilenet_v2_weights(allow_download=False)
    assert choice.pretrained and choice.keras_arg.endswith("_no_top.h5")


def test_offline_without_weights_says_so(monkeypatch, tmp_path):
    import retrain_lib.weights as weights

    monkeypatch.setattr(weights, "PROJECT_DIR", tmp_path / "nowhere" / "project")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("RETRAIN_WEIGHTS_DIR", raising=False)
    choice = weights.choose_mobilenet_v2_weights(allow_download=False)
    assert choice.keras_arg is None and not choice.pretrained
    assert choice.source.startswith("NO PRETRAINED WEIGHTS")


def test_failed_download_falls_back_to_random_weights_and_says_why(monkeypatch, tmp_path):
    """An offline machine (no ../shared, no cache, no network) still trains, and the report says why."""
    import retrain_lib.weights as weights

    monkeypatch.setattr(weights, "PROJECT_DIR", tmp_path / "nowhere" / "project")
    monkeypatch.setattr(weights, "WEIGHTS_URL", "http://127.0.0.1:9/")  # nothing listens on the discard port
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("RETRAIN_WEIGHTS_DIR", raising=False)
    choice = weights.choose_mobilenet_v2_weights(allow_download=True)
    assert choice.keras_arg is None and not choice.pretrained
    assert choice.source.startswith("NO PRETRAINED WEIGHTS") and "http://127.0.0.1:9/ failed" in choice.source
    assert not (tmp_path / "models" / weights.MOBILENET_V2_NO_TOP).exists()


def test_job_summary_prints_the_reports_warning_first(capsys, tmp_path):
    from retrain_lib.cli import _print_summary

    _print_summary({"warning": "NO PRETRAINED WEIGHTS: ...", "status": "succeeded",
                    "metrics": {"float": {"accuracy": 0.5}, "int8": {"accuracy": 0.5}}}, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  warning: NO PRETRAINED WEIGHTS: ..."


def test_cached_int8_activations_are_what_the_exported_int8_model_computes(shapes_dataset, tmp_path):
    """int8-aware training: the cache holds the frozen blocks as the whole int8 model computes them.

    The converter rounds the cache layer's last projection on the add's scale when more layers follow, so
    the two may differ by one quantization step there; every block below is bit-identical.
    """
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from retrain_lib.classifier import int8_activations, load_images
    from retrain_lib.quantize import calibration_indices, convert_to_int8

    model, backbone, _ = build_classifier(len(shapes_dataset.classes), TINY,
                                          choose_mobilenet_v2_weights(allow_download=False))
    lower = keras.Model(backbone.input, backbone.get_layer(TINY.cache_layer).output)
    images, _ = load_images(shapes_dataset, "train", TINY.input_size)
    calibration = images[calibration_indices(len(images), 10, seed=0)]
    cached = int8_activations(lower, calibration, tmp_path)(images[:4])

    whole = convert_to_int8(model, calibration, tmp_path / "whole.tflite")
    interpreter = Interpreter(model_path=str(whole), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    (tensor,) = [t for t in interpreter.get_tensor_details()
                 if TINY.cache_layer in t["name"] and tuple(t["shape"][1:]) == cached.shape[1:]]
    scale, zero_point = tensor["quantization"]
    inside = []
    for image in images[:4]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        inside.append((interpreter.get_tensor(tensor["index"])[0].astype(np.float32) - zero_point) * scale)
    inside = np.stack(inside)
    steps = np.abs(inside - cached) / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # the cache sits on the model's int8 grid
    assert steps.max() <= 1.001 and steps.mean() < 0.5
    float_lower = lower.predict(images[:4].astype(np.float32) / 127.5 - 1.0, verbose=0)
    assert np.abs(float_lower - inside).mean() > 2 * np.abs(cached - inside).mean(), \
        "the cache must be much closer to the int8 model than the float backbone is"


def test_head_learns_on_every_view_of_a_small_dataset_and_on_the_originals_of_a_large_one():
    from retrain_lib.classifier import HEAD_SAMPLES, head_view_count

    assert head_view_count(96, 3) == 3
    assert head_view_count(HEAD_SAMPLES // 2, 5) == 2
    assert head_view_count(3449, 5) == 1
    assert head_view_count(10 * HEAD_SAMPLES, 5) == 1
