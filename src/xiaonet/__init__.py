"""XiaoNet: a lightweight seismic phase picker distilled from PhaseNet and EQTransformer.

Importing ``xiaonet`` is cheap and has no side effects; the torch-based parts load on first
use (``xiaonet.XiaoNet``), so ``xiaonet.edge`` can run where torch is not installed.
"""

__version__ = "0.1.0"

_LAZY = {
    "XiaoNet": ("xiaonet.models.model", "XiaoNet"),
    "load_student": ("xiaonet.models.presets", "load_student"),
    "build_student": ("xiaonet.models.presets", "build_student"),
    "PRESETS": ("xiaonet.models.presets", "PRESETS"),
    "load_picker": ("xiaonet.picking.loading", "load_picker"),
    "StaLtaPicker": ("xiaonet.picking.stalta", "StaLtaPicker"),
    "load_teacher": ("xiaonet.models.teachers", "load_teacher"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'xiaonet' has no attribute '{name}'")


__all__ = ["__version__", *_LAZY]
