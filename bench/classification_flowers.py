"""Benchmark: a whole classification job on all of flowers_128px, beside TensorFlow's transfer-learning tutorial.

Run:  .venv/bin/python -m bench.classification_flowers [--skip-baseline]
Writes bench/results/classification_flowers.json and prints a Markdown summary for docs/benchmarks.md.

What it measures (2-core CPU machine):
- wall time per stage of `retrain run` (papermill, three stages) and of the whole job;
- the cached-activations speed-up: the frozen-backbone phase as the tutorial runs it (backbone forward every
  epoch) against ours (backbone once, then the head on cached features), per epoch and in total;
- float and int8 test accuracy of our job, and the tutorial recipe's float test accuracy and training time
  on the same split (MobileNetV2 at the same input size; 10 epochs frozen, then 10 epochs fine-tuning from
  layer 100 at a tenth of the learning rate, the backbone's BatchNormalization in inference mode).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
FLOWERS = PROJECT_DIR.parent / "shared" / "datasets" / "flowers_128px" / "flowers"
RESULTS = PROJECT_DIR / "bench" / "results" / "classification_flowers.json"
INPUT_SIZE = 160


def run_our_job(job_dir: Path) -> dict:
    from bench.detection_raccoon import package_overrides
    from retrain_lib.pipeline import run_job

    start = time.perf_counter()
    # the product's default agreement gate (95 % with the trained model)
    overrides = {"duplicate_conflicts": "exclude", **package_overrides()}
    report = run_job("classification", FLOWERS, job_dir, overrides, log=print)
    wall = time.perf_counter() - start
    stages = {name: (datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"])).total_seconds()
              for name, s in report["stages"].items()}
    return {"wall_s": wall, "stage_s": stages, "training_timings_s": report["training"]["timings_s"],
            "epochs": report["training"]["epochs"], "dataset_counts": report["dataset"]["counts"],
            "float_accuracy": report["metrics"]["float"]["accuracy"],
            "int8_accuracy": report["metrics"]["int8"]["accuracy"],
            "int8_agreement": report["metrics"]["int8"]["agreement_with_float"],
            "int8_agreement_with_trained": report["metrics"]["int8"]["agreement_with_trained"]}


def run_tutorial_baseline(job_dir: Path) -> dict:
    """TensorFlow's transfer-learning tutorial recipe on the same split and input size."""
    import keras
    import tensorflow as tf

    from retrain_lib.classifier import load_images
    from retrain_lib.dataset import load_dataset
    from retrain_lib.weights import choose_mobilenet_v2_weights

    keras.utils.set_random_seed(42)
    dataset = load_dataset(job_dir / "dataset")
    x_train, y_train = load_images(dataset, "train", INPUT_SIZE)
    x_val, y_val = load_images(dataset, "val", INPUT_SIZE)
    x_test, y_test = load_images(dataset, "test", INPUT_SIZE)
    train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=42).batch(32)
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(32)

    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.2)])
    base = keras.applications.MobileNetV2(input_shape=(INPUT_SIZE, INPUT_SIZE, 3), include_top=False,
                                          weights=choose_mobilenet_v2_weights(False).keras_arg)
    base.trainable = False
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
    x = augmentation(inputs)
    x = keras.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(len(dataset.classes))(x)
    model = keras.Model(inputs, outputs)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    base_lr = 0.0001
    model.compile(optimizer=keras.optimizers.Adam(base_lr), loss=loss, metrics=["accuracy"])
    start = time.perf_counter()
    frozen = model.fit(train_ds, validation_data=val_ds, epochs=10, verbose=2)
    frozen_s = time.perf_counter() - start

    base.trainable = True
    for layer in base.layers[:100]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.RMSprop(base_lr / 10), loss=loss, metrics=["accuracy"])
    start = time.perf_counter()
    fine = model.fit(train_ds, validation_data=val_ds, epochs=20, initial_epoch=10, verbose=2)
    fine_s = time.perf_counter() - start
    predicted = model.predict(x_test.astype(np.float32), verbose=0).argmax(1)
    return {"frozen_phase_s": frozen_s, "frozen_epoch_s": frozen_s / 10, "fine_tune_phase_s": fine_s,
            "train_total_s": frozen_s + fine_s, "float_accuracy": float((predicted == y_test).mean()),
            "val_accuracy_last": float(fine.history["val_accuracy"][-1]),
            "val_accuracy_frozen_last": float(frozen.history["val_accuracy"][-1])}


def summarise(ours: dict, baseline: dict | None) -> str:
    t = ours["training_timings_s"]
    our_frozen_epoch = t["train_head_s"] / max(ours["epochs"]["head"], 1)
    lines = [
        f"- Whole job ({len(ours['stage_s'])} stages, papermill): **{ours['wall_s']:.0f} s**; per stage: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in ours["stage_s"].items()),
        f"- Training inside 02_train: {t['train_total_s']:.0f} s (images {t['load_images_s']:.0f} s, cached "
        f"activations {t['cache_activations_s']:.0f} s, head {t['train_head_s']:.0f} s over {ours['epochs']['head']} "
        f"epochs, fine-tuning {t.get('fine_tune_s', 0):.0f} s over {ours['epochs'].get('fine_tune', 0)} epochs)",
        f"- Test accuracy: float **{ours['float_accuracy']:.3f}**, int8 **{ours['int8_accuracy']:.3f}**, "
        f"top-1 agreement with the float model {ours['int8_agreement']:.1%}, with the trained model (the gate) "
        f"{ours['int8_agreement_with_trained']:.1%}",
    ]
    if baseline:
        speedup = baseline["frozen_epoch_s"] / our_frozen_epoch
        lines += [
            f"- Tutorial baseline: float test accuracy **{baseline['float_accuracy']:.3f}**, training "
            f"**{baseline['train_total_s']:.0f} s** (frozen {baseline['frozen_phase_s']:.0f} s, fine-tuning "
            f"{baseline['fine_tune_phase_s']:.0f} s)",
            f"- Cached activations: a frozen-backbone epoch costs {our_frozen_epoch:.2f} s (head on cached features) "
            f"vs {baseline['frozen_epoch_s']:.1f} s running the backbone: **{speedup:.0f}x** per epoch; the one-off "
            f"cache costs {t['cache_activations_s']:.0f} s",
            f"- Our training time / baseline training time: **{t['train_total_s'] / baseline['train_total_s']:.2f}**",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--job-dir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    job_dir = args.job_dir or Path(tempfile.mkdtemp(prefix="bench-flowers-")) / "job"
    ours = run_our_job(job_dir)
    baseline = None if args.skip_baseline else run_tutorial_baseline(job_dir)
    result = {"date": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "input_size": INPUT_SIZE, "ours": ours, "baseline": baseline}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(summarise(ours, baseline))


if __name__ == "__main__":
    main()
