"""The annotate settings of a SeisBench ``WaveformModel`` (overlap, stacking, blinding,
thresholds, shortest record): what ``model.annotate`` would use, for the runtimes that
window the data themselves (streaming, the ONNX edge runtime).

This is the one module that reads SeisBench's private attributes (``_annotate_args``,
``_grouping``); ``tests/models/test_model.py`` checks them against the installed SeisBench, so a
SeisBench release that renames them fails there, not in the field.
"""

from __future__ import annotations

#: Threshold SeisBench's picking uses when a model declares none.
FALLBACK_THRESHOLD = 0.3


_REQUIRED = object()


def annotate_setting(model, key: str, argdict: dict | None = None, default=_REQUIRED):
    """``key`` as ``model.annotate(**argdict)`` would use it: the call's value, else the
    model's ``default_args``, else the class's documented default, else ``default`` (a
    KeyError when none is given)."""
    for source in (argdict or {}, model.default_args):
        if key in source:
            return source[key]
    if key in model._annotate_args or default is _REQUIRED:
        return model._annotate_args[key][1]
    return default


def default_threshold(model, phase: str, argdict: dict | None = None) -> float:
    """The probability threshold of ``phase`` (``{phase}_threshold``, else the class's
    ``*_threshold`` default)."""
    for source in (argdict or {}, model.default_args):
        if f"{phase}_threshold" in source:
            return float(source[f"{phase}_threshold"])
    return float(model._annotate_args.get("*_threshold", (None, FALLBACK_THRESHOLD))[1])


def min_record_seconds(model) -> float:
    """The shortest record SeisBench annotates (shorter ones give no output)."""
    grouping = getattr(model, "_grouping", None)
    return float(getattr(grouping, "min_record_s", (model.in_samples - 1) / model.sampling_rate))
