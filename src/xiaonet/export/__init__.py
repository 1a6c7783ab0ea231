"""Export of trained models for the runtimes: ONNX files (fp32 and static int8) from a torch
model (:mod:`xiaonet.export.onnx_files`). Needs torch and onnx; the runtimes that read the files
(:mod:`xiaonet.edge`) need neither torch nor this package."""
