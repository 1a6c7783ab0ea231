"""`make mcu-check`: the generated C runtime on an emulated Cortex-M4F, against the x86 picks.

For each configuration (fp32 / int8 weights, 30 s / the model's window) this

1. generates the C runtime from the exported ONNX file (``xiaonet export``),
2. stores a real waveform (default: the first 400 s of CX.PB01, 2014-03-01, from
   $XIAONET_SHARED/data/continuous) in the firmware as int32 counts,
3. cross-compiles for a Cortex-M4F (arm-none-eabi-gcc, hard float) and runs it under
   ``qemu-system-arm -M mps2-an386`` with semihosting and ``-icount shift=0`` (the virtual
   clock advances one nanosecond per executed instruction; the firmware reads a 25 MHz
   timer and calibrates it with a loop of known length),
4. compares the printed picks with the same C code on x86 (ctypes) and, for the model's own
   window, with ``python -m xiaonet.edge``'s runtime (ONNX Runtime) on the same samples,
5. reports flash (text + rodata + data, the waveform excluded) and RAM (data + bss + the
   stack measured by painting) from the ELF, and instructions per second of waveform.

Not part of ``make test``: it needs the ARM toolchain and QEMU (see ``make mcu-tools``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99", "-ffp-contract=off",
          "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra"]
LDFLAGS = ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
           f"-T{HERE / 'mps2_an386.ld'}"]
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
        "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0"]
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
AARCH64_TOOLS = ("aarch64-linux-gnu-gcc", "qemu-aarch64")
CALIBRATION_INSTRUCTIONS_PER_ITERATION = 2


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"mcu-check: {' '.join(map(str, command))} failed ({result.returncode}):\n"
                         f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def export_onnx(model: str, work: Path, int8: bool, calibration: list[str] | None) -> Path:
    from xiaonet.cli import main

    out = work / f"{Path(model).stem}.onnx"
    args = ["export", model, "--out", str(out)]
    if int8:
        args += ["--int8"] + (["--calibration", *calibration] if calibration else [])
    if main(args) != 0:
        raise SystemExit(f"mcu-check: xiaonet {' '.join(args)} failed")
    return out.with_name(out.stem + ".int8.onnx") if int8 else out


def load_waveform(path: str, seconds: float, component_order: str, rate: float) -> tuple[np.ndarray, str]:
    """(channels, samples) int32 counts of the first ``seconds`` of a 3-component file."""
    import obspy

    stream = obspy.read(path)
    stream.merge(method=1, fill_value=0)
    n = int(seconds * rate)
    rows = []
    for component in component_order:
        traces = stream.select(component=component)
        if not traces or traces[0].stats.sampling_rate != rate or traces[0].stats.npts < n:
            raise SystemExit(f"mcu-check: {path} needs a {component} trace of >= {seconds} s at {rate} Hz")
        rows.append(np.asarray(traces[0].data[:n]))
    data = np.stack(rows)
    if not np.issubdtype(data.dtype, np.integer) or np.abs(data).max() >= 2**31:
        raise SystemExit(f"mcu-check: {path} must hold integer counts (stored as int32 in the firmware)")
    trace = stream.select(component=component_order[0])[0]
    label = f"{trace.id[:-1]}_ {trace.stats.starttime} + {seconds:g} s"
    return data.astype(np.int32), label


def write_waveform_header(path: Path, data: np.ndarray, label: str) -> None:
    rows = []
    for channel in data:
        items = [str(int(v)) for v in channel]
        rows.append("{" + ",\n".join(",".join(items[i : i + 20]) for i in range(0, len(items), 20)) + "}")
    path.write_text(f"/* {label}: int32 counts, component order of the model */\n"
                    f"#define XN_WAVE_SAMPLES {data.shape[1]}\n"
                    f"static const int32_t xn_wave[3][XN_WAVE_SAMPLES] = {{\n" + ",\n".join(rows) + "\n};\n")


def section_sizes(elf: Path) -> dict[str, int]:
    sizes = {}
    for line in run(["arm-none-eabi-size", "-A", str(elf)]).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def symbol_size(elf: Path, name: str) -> int:
    for line in run(["arm-none-eabi-nm", "-S", str(elf)]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    return 0


def object_sizes(objects: list[Path]) -> dict[str, int]:
    """text (code + rodata), data, bss of object files (Berkeley format)."""
    out = run(["arm-none-eabi-size", "-t", *map(str, objects)]).stdout.splitlines()[-1].split()
    return {"text": int(out[0]), "data": int(out[1]), "bss": int(out[2])}


def build_and_run(c_dir: Path, timeout: float) -> dict:
    sources = [HERE / "startup.c", HERE / "main.c", c_dir / "xiaonet.c", c_dir / "xiaonet_weights.c"]
    objects = []
    for source in sources:
        obj = c_dir / (source.stem + ".o")
        run(["arm-none-eabi-gcc", *CFLAGS, f"-I{c_dir}", f"-I{HERE}", "-c", str(source), "-o", str(obj)])
        objects.append(obj)
    elf = c_dir / "firmware.elf"
    run(["arm-none-eabi-gcc", *CFLAGS, *LDFLAGS, *map(str, objects), "-lm", "-o", str(elf)])
    result = run([*QEMU, "-kernel", str(elf)], timeout=timeout)
    lines = (result.stdout + "\n" + result.stderr).splitlines()  # semihosting output goes to either

    def values(tag):
        return [[int(x) for x in line.split()[1:]] for line in lines if line.startswith(tag + " ")]

    sections = section_sizes(elf)
    calibration = values("CALIBRATION")[0]
    ticks = values("TICKS")[0]
    instructions_per_tick = calibration[0] * CALIBRATION_INSTRUCTIONS_PER_ITERATION / calibration[1]
    return {
        "picks": [("PS"[p], peak, start, end, prob / 1e6) for p, peak, start, end, prob in values("PICK")],
        "model": values("MODEL")[0],
        "instructions_per_tick": instructions_per_tick,
        "instructions": ticks[0] * instructions_per_tick,
        "worst_push_instructions": ticks[1] * instructions_per_tick,
        "windows": ticks[2],
        "stack": values("STACK")[0][0],
        "sections": sections,
        "waveform_bytes": symbol_size(elf, "xn_wave"),
        "runtime_objects": object_sizes(objects[2:]),
    }


def run_aarch64(c_dir: Path, data: np.ndarray, timeout: float) -> dict:
    """The same streaming run as a static aarch64 Linux program under qemu-aarch64: picks, and
    instructions of one window (QEMU 7.2 -singlestep: one instruction per block; executed blocks
    counted from the exec log, the run with no samples subtracted)."""
    binary = c_dir / "picker-aarch64"
    run(["aarch64-linux-gnu-gcc", "-static", "-O2", "-std=c99", "-ffp-contract=off", f"-I{c_dir}",
         str(HERE / "linux_main.c"), str(c_dir / "xiaonet.c"), str(c_dir / "xiaonet_weights.c"), "-lm",
         "-o", str(binary)])
    wave = c_dir / "wave.bin"
    data.astype("<i4").tofile(wave)
    lines = run(["qemu-aarch64", str(binary), str(wave), str(data.shape[1])], timeout=timeout).stdout.splitlines()
    picks = [[int(x) for x in line.split()[1:]] for line in lines if line.startswith("PICK ")]

    def instructions(samples: int) -> int:
        command = ["qemu-aarch64", "-singlestep", "-d", "exec,nochain",  # one instruction per block
                   str(binary), str(wave), str(samples)]
        with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
            count = sum(1 for line in process.stderr if line.startswith(b"Trace"))
        return count

    window = int(re.search(r"#define XN_WINDOW (\d+)", (c_dir / "xiaonet_model.h").read_text()).group(1))
    return {"picks": [("PS"[p], peak, start, end, prob / 1e6) for p, peak, start, end, prob in picks],
            "window_instructions": instructions(window) - instructions(0), "window": window}


def same_picks(ours: list, theirs: list) -> tuple[bool, int]:
    """Same phases and peaks within one sample; returns (equal, largest peak difference)."""
    if len(ours) != len(theirs):
        return False, -1
    worst = 0
    for a, b in zip(sorted(ours, key=lambda p: (p[1], p[0])), sorted(theirs, key=lambda p: (p[1], p[0]))):
        if a[0] != b[0]:
            return False, -1
        worst = max(worst, abs(a[1] - b[1]))
    return worst <= 1, worst


def main(argv: list[str] | None = None) -> int:
    from xiaonet.distill.config import default_shared_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="xiaonet-s", help="student preset or weights path")
    shared = default_shared_dir()
    parser.add_argument("--data", default=str(shared / "data/continuous/chile_CX_deepphasepick/"
                                              "CX.PB01..HH_.20140301T015959.mseed"),
                        help="3-component waveform file with integer counts")
    parser.add_argument("--seconds", type=float, default=400.0, help="seconds of the file stored in the firmware")
    parser.add_argument("--windows", type=int, nargs="+", default=[3001, 0],
                        help="window lengths to build (0 = the model's own)")
    parser.add_argument("--no-int8", action="store_true", help="fp32 only (int8 needs calibration data)")
    parser.add_argument("--calibration", nargs="+", default=None, help="int8 calibration files (default: shared data)")
    parser.add_argument("--work", default=str(HERE / "build"), help="build folder")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per emulator run")
    parser.add_argument("--aarch64", action="store_true",
                        help="also run on aarch64 Linux under qemu-aarch64 (gcc-aarch64-linux-gnu, qemu-user)")
    args = parser.parse_args(argv)

    missing = [tool for tool in TOOLS + (AARCH64_TOOLS if args.aarch64 else ()) if not shutil.which(tool)]
    if missing:
        print(f"mcu-check: {', '.join(missing)} not found; run `make mcu-tools` (apt-get install "
              "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)", file=sys.stderr)
        return 2
    from xiaonet.edge import EdgePicker
    from xiaonet.edge.c_export import write_c_model
    from xiaonet.edge.c_runtime import CModel

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results, ok = [], True
    for precision in ["fp32"] + ([] if args.no_int8 else ["int8"]):
        onnx_path = export_onnx(args.model, work, precision == "int8", args.calibration)
        reference = EdgePicker(onnx_path)
        meta = reference.model.metadata
        data, label = load_waveform(args.data, args.seconds, meta.component_order, meta.sampling_rate)
        for window in args.windows:
            window = window or meta.in_samples
            c_dir = work / f"{precision}-{window}"
            write_c_model(onnx_path, c_dir, window=window)
            write_waveform_header(c_dir / "waveform.h", data, label)
            print(f"== {precision}, window {window}: building and running under QEMU ...", flush=True)
            mcu = build_and_run(c_dir, args.timeout)
            x86 = [(phase, peak, s0, s1, p) for phase, s0, s1, peak, p in
                   CModel(c_dir).stream_picks(data.astype(np.float32), reference.thresholds)]
            equal_x86, worst_x86 = same_picks(mcu["picks"], x86)
            row = {"precision": precision, "window": window, "data": label, **mcu,
                   "x86_picks": x86, "equal_to_x86": equal_x86, "largest_peak_difference_x86": worst_x86}
            if window == meta.in_samples:  # the Python edge runtime (ONNX Runtime) on the same samples
                onnx_picks = [(p.phase, int(round(p.peak_time * meta.sampling_rate)), 0, 0, p.peak_value)
                              for p in reference.pick_array(data.astype(np.float32), 0.0)]
                row["equal_to_onnx"], row["largest_peak_difference_onnx"] = same_picks(mcu["picks"], onnx_picks)
                ok &= row["equal_to_onnx"]
            ok &= equal_x86
            if args.aarch64:
                arm64 = run_aarch64(c_dir, data, args.timeout)
                row["aarch64_equal_to_x86"], _ = same_picks(arm64["picks"], x86)
                row["aarch64_window_instructions"] = arm64["window_instructions"]
                ok &= row["aarch64_equal_to_x86"]
            results.append(row)
            report_row(row, meta.sampling_rate, args.seconds)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print_table(results, args.seconds)
    print(f"\nmcu-check: {'PASS' if ok else 'FAIL'}: Cortex-M4F picks "
          f"{'identical (within one sample) to' if ok else 'DIFFER from'} the x86 picks; details in {work / 'results.json'}")
    return 0 if ok else 1


def figures(row: dict, seconds: float) -> dict:
    s = row["sections"]
    flash = sum(s.get(name, 0) for name in (".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data"))
    per_second = row["instructions"] / seconds
    return {
        "flash": flash - row["waveform_bytes"],
        "ram": s.get(".data", 0) + s.get(".bss", 0) + row["stack"],
        "per_second": per_second,
        "rtf64": 64e6 / per_second, "rtf240": 240e6 / per_second,
    }


def report_row(row: dict, rate: float, seconds: float) -> None:
    f = figures(row, seconds)
    picks = ", ".join(f"{phase}@{peak / rate:.2f}s({p:.3f})" for phase, peak, _, _, p in row["picks"])
    print(f"   picks (M4F): {picks}")
    print(f"   x86 C picks equal: {row['equal_to_x86']} (largest peak difference {row['largest_peak_difference_x86']} samples)")
    if "equal_to_onnx" in row:
        print(f"   python -m xiaonet.edge (ONNX Runtime) picks equal: {row['equal_to_onnx']} "
              f"(largest peak difference {row['largest_peak_difference_onnx']} samples)")
    print(f"   flash {f['flash']} B (waveform excluded), RAM {f['ram']} B (data + bss + stack {row['stack']} B), "
          f"{f['per_second']:,.0f} instructions / s of waveform, RTF {f['rtf64']:.0f} at 64 MHz, "
          f"{f['rtf240']:.0f} at 240 MHz", flush=True)
    if "aarch64_equal_to_x86" in row:
        step = row["window"] - int(0.25 * row["window"])
        per_second = row["aarch64_window_instructions"] / (step / rate)
        print(f"   aarch64 (qemu-aarch64): picks equal to x86: {row['aarch64_equal_to_x86']}; one window "
              f"{row['aarch64_window_instructions']:,} instructions, ~{per_second:,.0f} per second of waveform "
              f"(a window every {step / rate:g} s)", flush=True)


def print_table(results: list[dict], seconds: float) -> None:
    print("\n| weights | window | flash B | of which runtime .o text | RAM B (data+bss+stack) | stack B | "
          "instructions / s of waveform | worst push (instructions) | RTF @ 64 MHz | RTF @ 240 MHz | picks = x86 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        f = figures(row, seconds)
        print(f"| {row['precision']} | {row['window']} | {f['flash']:,} | {row['runtime_objects']['text']:,} | "
              f"{f['ram']:,} | {row['stack']} | {f['per_second']:,.0f} | {row['worst_push_instructions']:,.0f} | "
              f"{f['rtf64']:.0f} | {f['rtf240']:.0f} | {'yes' if row['equal_to_x86'] else 'NO'} |")


if __name__ == "__main__":
    sys.exit(main())
