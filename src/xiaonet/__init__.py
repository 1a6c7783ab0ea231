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


#: Modules that moved into subpackages (2026-11-30) -> their home now. ``import xiaonet.scoring``
#: and the like keep working: the old name is the same module object as the new one.
MOVED_MODULES = {
    "model": "models.model", "presets": "models.presets", "teachers": "models.teachers",
    "waveforms": "data.waveforms", "datasets": "data.datasets", "augmentations": "data.augmentations",
    "config": "distill.config", "teacher_labels": "distill.teacher_labels",
    "distillation": "distill.distillation", "training": "distill.training", "model_card": "distill.model_card",
    "pickers": "picking.pickers", "stalta": "picking.stalta", "picktable": "picking.picktable",
    "plotting": "picking.plotting", "streaming": "stream.streaming", "packet_sources": "stream.packet_sources",
    "scoring": "evaluate.scoring", "consensus": "evaluate.consensus", "evaluation": "evaluate.evaluation",
    "pick_benchmark": "evaluate.pick_benchmark", "reports": "evaluate.reports",
    "generalisation": "evaluate.generalisation", "export": "edge.export", "benchmarking": "speed.benchmarking",
}


def _install_moved_module_finder() -> None:
    import importlib
    import importlib.abc
    import importlib.util
    import sys

    class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Resolves ``xiaonet.<old>`` to ``xiaonet.<package>.<old>`` (no file, no copy)."""

        def find_spec(self, fullname, path=None, target=None):
            old = fullname.removeprefix("xiaonet.")
            if fullname.startswith("xiaonet.") and old in MOVED_MODULES:
                return importlib.util.spec_from_loader(fullname, self)
            return None

        def create_module(self, spec):
            return importlib.import_module("xiaonet." + MOVED_MODULES[spec.name.removeprefix("xiaonet.")])

        def exec_module(self, module):
            pass  # already executed under its new name

    if not any(type(f).__name__ == "MovedModuleFinder" for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


_install_moved_module_finder()


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'xiaonet' has no attribute '{name}'")


__all__ = ["__version__", *_LAZY]
