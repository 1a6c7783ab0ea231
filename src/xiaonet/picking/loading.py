"""Every picker by name: the student presets and weights paths, the SeisBench teachers and
STA/LTA (:func:`load_picker`).

It lives apart from the picker classes so that those never import each other: STA/LTA
subclasses :class:`xiaonet.picking.pickers.Picker`, and this module knows them all.
"""

from __future__ import annotations

from xiaonet.picking.pickers import ModelPicker, Picker

TEACHER_NAMES = ("phasenet", "eqtransformer", "gpd")


def available_picker_names() -> list[str]:
    from xiaonet.models.presets import PRESETS

    return sorted(PRESETS) + list(TEACHER_NAMES) + ["stalta"]


def load_picker(
    spec: str,
    weights: str = "original",
    thresholds: dict[str, float] | None = None,
    stalta_options: dict | None = None,
) -> Picker:
    """Build a picker from a name: a student preset or weights path, ``stalta``, or a teacher.

    Teachers (``phasenet``, ``eqtransformer``, ``gpd``) load ``weights`` through SeisBench's
    cache (``SEISBENCH_CACHE_ROOT``). A teacher may also be written ``phasenet:stead``.
    """
    from pathlib import Path

    from xiaonet.models.presets import PRESETS, load_student, weights_file

    name, _, weights_in_spec = spec.partition(":")
    if weights_in_spec:
        weights = weights_in_spec
    lowered = name.lower()
    if lowered == "stalta":
        from xiaonet.picking.stalta import StaLtaPicker

        return StaLtaPicker(**(stalta_options or {}))
    if lowered in TEACHER_NAMES:
        from xiaonet.models.teachers import load_teacher

        model = load_teacher(lowered, weights)
        return ModelPicker(model, name=f"{lowered}:{weights}", thresholds=thresholds or
                           {"P": 0.3, "S": 0.3})
    if spec in PRESETS or weights_file(spec, ".json").exists() or Path(spec).exists():
        model = load_student(spec)
        return ModelPicker(model, name=Path(spec).name if spec not in PRESETS else spec,
                           thresholds=thresholds)
    raise ValueError(
        f"Unknown picker '{spec}'. Choose one of: {', '.join(available_picker_names())}, "
        "or a path to XiaoNet weights (NAME.json + NAME.pt)."
    )
