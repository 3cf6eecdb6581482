"""What a compression run returns (and writes as <output_dir>/result.json). Plain Python, no torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CompressResult:
    status: str
    """"succeeded" or "cancelled" (the report callback answered "stop")."""
    method: str
    model_path: str
    """The folder to register: a Hugging Face folder, or a quantised folder that ``load_model`` reloads."""
    format: str
    """"hf" (plain from_pretrained folder) or "quantized" (holds quantization.json; load with load_model)."""
    parameters_before: int = 0
    parameters_after: int = 0
    """Parameters of the source and of the result (quantised weights count once each)."""
    size_before: int = 0
    size_after: int = 0
    """Bytes on disk of the source folder and of the result folder."""
    sparsity_requested: float | None = None
    sparsity_reached: float | None = None
    """Pruning: the share of prunable weights (magnitude, 2:4) or units (heads, channels) actually removed."""
    train_losses: list[list[float]] = field(default_factory=list)
    """[[step, loss], ...] of the recovery fine-tune or the distillation."""
    val_loss: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Method specifics: quantised module count, heads removed per layer, layers kept, kernel used ..."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, output_dir: str | Path) -> Path:
        path = Path(output_dir) / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path
