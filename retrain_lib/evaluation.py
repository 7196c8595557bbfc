"""Classification metrics and the plots that show them: curves, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts[true, predicted]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/support and the confusion matrix, JSON-ready."""
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    per_class = {}
    for i, name in enumerate(classes):
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        per_class[name] = {
            "precision": float(matrix[i, i] / predicted) if predicted else 0.0,
            "recall": float(matrix[i, i] / actual) if actual else 0.0,
            "support": int(actual),
        }
    accuracy = float(np.trace(matrix) / matrix.sum()) if matrix.sum() else 0.0
    return {"accuracy": accuracy, "per_class": per_class, "confusion_matrix": matrix.tolist()}


def plot_confusion(matrix: list[list[int]], classes: list[str], out_path: Path, title: str) -> Path:
    """Saves the confusion matrix as a PNG with counts in the cells."""
    plt = _pyplot()
    data = np.asarray(matrix)
    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(data):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > data.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def plot_history(history: dict[str, list], out_path: Path) -> Path:
    """Saves loss and accuracy curves per epoch, the fine-tuning phase shaded."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = range(1, len(history["loss"]) + 1)
    fine = [i + 1 for i, p in enumerate(history.get("phase", [])) if p == "fine_tune"]
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[key], label=f"train {key}")
        ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        if fine:
            ax.axvspan(fine[0] - 0.5, fine[-1] + 0.5, color="grey", alpha=0.15, label="fine-tuning")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
