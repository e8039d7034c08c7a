"""A standardised logistic regression stored as data (the re-ranker and the answerability
decision are both one). Fitted by ``assistant.calibration`` and
``assistant.answerability_fit`` with scikit-learn; serving
needs only numpy and the numbers in the JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class ModelFileError(ValueError):
    """A stored model that does not fit the code; ``str(e)`` is a Chinese message."""


@dataclass
class LinearModel:
    """``p = sigmoid(((x - mean) / scale) @ coef + intercept)``, with a decision ``threshold``."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, features: Sequence[str]) -> LinearModel | None:
        """The stored model, or None when the file does not exist."""
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            model = cls(
                list(data["features"]),
                [float(x) for x in data["mean"]],
                [float(x) for x in data["scale"]],
                [float(x) for x in data["coef"]],
                float(data["intercept"]),
                float(data.get("threshold", 0.5)),
                dict(data.get("meta", {})),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(
                f"无法读取模型文件 {path}：{exc}。请运行 policy-assistant calibrate 重新拟合。"
            ) from exc
        if model.features != list(features):
            raise ModelFileError(
                f"{path} 的特征与当前代码不一致：请运行 policy-assistant calibrate 重新拟合。"
            )
        return model

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "features": self.features,
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "threshold": self.threshold,
            "meta": self.meta,
        }
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        z = ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef) + self.intercept
        result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return result

    def weights(self) -> list[tuple[str, float]]:
        """(feature, standardised coefficient), largest effect first: what the model looks at."""
        return sorted(zip(self.features, self.coef, strict=True), key=lambda fw: -abs(fw[1]))
