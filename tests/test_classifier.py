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
                   fine_tune_batchnorm=False)


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
