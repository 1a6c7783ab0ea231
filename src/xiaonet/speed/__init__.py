"""Speed and memory measurements (``xiaonet benchmark runtimes``)."""
