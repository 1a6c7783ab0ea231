"""Exported models (fp32 and int8 ONNX files) scored against analyst picks, through the one
evaluation path: what ``xiaonet export --compare-dataset`` prints."""

from __future__ import annotations

from pathlib import Path


def compare_picks_on_dataset(model_paths: dict[str, Path], dataset_path: str | Path,
                             tolerance: float = 0.5, max_traces: int | None = None) -> dict:
    """Whole-trace picks of each ONNX model scored against the dataset's analyst picks, through
    the one evaluation path (:func:`xiaonet.evaluate.evaluation.evaluate`).

    Returns ``{label: {"P": row, "S": row}}`` (the evaluation's metric rows: precision,
    recall, f1, ...) plus ``"n_traces"``.
    """
    from xiaonet.edge import EdgePicker
    from xiaonet.evaluate.evaluation import EvaluationSettings, evaluate
    from xiaonet.evaluate.traces import LabelledDataset

    pickers = []
    for label, path in model_paths.items():
        picker = EdgePicker(path)
        picker.name = label
        pickers.append(picker)
    dataset = LabelledDataset(dataset_path)
    evaluation = evaluate(pickers, [dataset], EvaluationSettings(tolerance=tolerance, thresholds=(0.5,), progress=False),
                          max_traces=max_traces)
    result: dict = {label: {} for label in model_paths}
    for row in evaluation.rows:
        result[row["picker"]][row["phase"]] = row
    result["n_traces"] = evaluation.datasets[0]["evaluated_traces"]
    return result
