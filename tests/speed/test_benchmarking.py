"""`xiaonet benchmark runtimes` runs in-process on seconds of data and prints every column."""

import json

import numpy as np
import pytest

from xiaonet.speed.benchmarking import expand_model_specs
from xiaonet.models.cost import count_macs
from xiaonet.speed.data import BenchmarkError, synthetic_data
from xiaonet.speed.report import COLUMNS
from xiaonet.cli import main


def markdown_tables(text):
    """[(header, rows)] of every markdown table in ``text``, in order."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            cells = [[c.strip() for c in row.strip("|").split("|")] for row in current if not row.startswith("|---")]
            tables.append((cells[0], cells[1:]))
            current = []
    return tables


def table_rows(text):
    return markdown_tables(text)[0]


def conv_macs_reference(model, n_samples: int) -> int:
    """Slow oracle: every convolution's MACs from its output lengths, worked out by hand."""
    import torch
    import torch.nn as nn

    lengths = {}
    handles = [m.register_forward_hook(lambda mod, i, o, lengths=lengths: lengths.__setitem__(mod, (i[0].shape[-1], o.shape[-1])))
               for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
    with torch.no_grad():
        model(torch.zeros(1, 3, n_samples))
    for handle in handles:
        handle.remove()
    total = 0
    for module, (length_in, length_out) in lengths.items():
        per_sample = module.in_channels * module.out_channels // module.groups * module.kernel_size[0]
        total += per_sample * (length_in if isinstance(module, nn.ConvTranspose1d) else length_out)
    return total


def test_mac_counter_equals_a_hand_count_of_the_students_convolutions():
    from xiaonet.models.presets import PRESETS, build_student

    for name in PRESETS:
        model = build_student(name)
        assert count_macs(model, 3001) == conv_macs_reference(model, 3001) > 0


def test_mac_counter_counts_lstm_and_linear():
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4)
            self.linear = nn.Linear(4, 2)

        def forward(self, x):  # (1, 3, T) -> (T, 1, 3)
            out, _ = self.lstm(x.permute(2, 0, 1))
            return self.linear(out)

    # LSTM: T * 4 gates * hidden * (input + hidden); Linear: T * in * out
    assert count_macs(Tiny(), 10) == 10 * 4 * 4 * (3 + 4) + 10 * 4 * 2


def test_model_specs_expand_and_refuse_unknown_names():
    assert expand_model_specs(["xiaonet-s:onnx-int8", "stalta"]) == [("xiaonet-s", "onnx-int8"), ("stalta", "obspy")]
    assert ("phasenet", "seisbench") in expand_model_specs(["phasenet"])
    with pytest.raises(BenchmarkError, match="Known:.*phasenet"):
        expand_model_specs(["phasnet"])
    with pytest.raises(BenchmarkError, match="runtime 'tflite'"):
        expand_model_specs(["xiaonet-s:tflite"])


def test_synthetic_data_is_labelled_and_seeded():
    a, b = synthetic_data(5, np.random.default_rng(3)), synthetic_data(5, np.random.default_rng(3))
    assert a.synthetic and "SYNTHETIC" in a.description
    np.testing.assert_array_equal(a.blocks[0].data, b.blocks[0].data)
    assert a.station_hours == pytest.approx(5 / 3600)


@pytest.mark.slow
def test_benchmark_prints_every_column_against_phasenet(tmp_path, capsys, teacher_cache):
    out = tmp_path / "bench.json"
    code = main([
        "benchmark", "runtimes", "--picker", "xiaonet-s:torch,xiaonet-s:onnx-fp32,xiaonet-s:onnx-int8",
        "--picker", "phasenet:seisbench,phasenet:onnx-fp32,stalta",
        "--synthetic", "40", "--repeats", "1", "--latency-calls", "3", "--out", str(out),
        "--workdir", str(tmp_path / "work"), "--no-cli",
    ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    header, rows = table_rows(printed)
    assert header == COLUMNS
    assert [(r[0], r[1]) for r in rows] == [
        ("xiaonet-s", "torch"), ("xiaonet-s", "onnx-fp32"), ("xiaonet-s", "onnx-int8"),
        ("phasenet", "seisbench"), ("phasenet", "onnx-fp32"), ("stalta", "obspy"),
    ]
    not_for_stalta = {"params", "fp32 file kB", "int8 file kB", "MMACs / 30 s", "x PhaseNet MACs"}
    for row in rows:
        assert len(row) == len(COLUMNS)
        for column, cell in zip(COLUMNS[2:], row[2:]):
            if row[0] == "stalta" and column in not_for_stalta:
                continue
            assert cell != "–", (row[:2], column)
    assert "SYNTHETIC NOISE" in printed and "Targets" in printed
    report = json.loads(out.read_text())
    assert report["data"]["synthetic"] is True
    by_key = {(r["model"], r["runtime"]): r for r in report["rows"]}
    assert by_key[("phasenet", "seisbench")]["throughput"] > 0
    assert by_key[("xiaonet-s", "onnx-int8")]["int8_bytes"] < by_key[("xiaonet-s", "onnx-fp32")]["fp32_bytes"]
    assert all(r["peak_rss_mb"] > 0 for r in report["rows"])
    assert len(report["targets"]) == 7 and report["cli"] is None
    from xiaonet.models.presets import DEFAULT_PRESET

    # speed is judged on the student `xiaonet pick` runs, size on the microcontroller student
    assert report["targets"][0]["target"].startswith(f"{DEFAULT_PRESET} (default) throughput")
    assert any(t["target"].startswith("xiaonet-s (microcontroller) int8 file") for t in report["targets"])


def test_benchmark_runs_without_shared_data_or_teachers(tmp_path, capsys):
    """Hermetic: student and STA/LTA rows only, so the ratio columns stay empty."""
    code = main(["benchmark", "runtimes", "--picker", "xiaonet-xs:onnx-int8,stalta", "--synthetic", "40",
                 "--repeats", "1", "--latency-calls", "2", "--workdir", str(tmp_path), "--no-cli"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    header, rows = table_rows(printed)
    assert header == COLUMNS and len(rows) == 2
    student = dict(zip(COLUMNS, rows[0]))
    for column in ("params", "int8 file kB", "MMACs / 30 s", "latency p50 ms", "station-h / core-s", "peak RSS MB"):
        assert student[column] != "–", column
    assert student["x PhaseNet speed"] == "–"
    assert "not measured" in printed  # targets that need PhaseNet say so instead of guessing


def test_benchmark_without_data_says_what_to_give(capsys):
    assert main(["benchmark", "runtimes", "--picker", "stalta", "--data", "/nonexistent/*.mseed", "--no-rss"]) == 2
    assert "no such file" in capsys.readouterr().err


def synthetic_station_file(path, seconds=240, onsets=(40, 110, 180), seed=5):
    """Noise with three impulsive arrivals, 3 components at 100 Hz, written as miniSEED."""
    import obspy

    rng = np.random.default_rng(seed)
    n = int(seconds * 100)
    data = rng.standard_normal((3, n)) * 50
    for onset in onsets:
        i = int(onset * 100)
        decay = np.exp(-np.arange(n - i) / 300.0)
        data[:, i:] += rng.standard_normal((3, n - i)) * 2000 * decay
    start = obspy.UTCDateTime(2024, 1, 1)
    stream = obspy.Stream([obspy.Trace(data[k].astype(np.int32), {
        "network": "XX", "station": "SYN", "location": "", "channel": "HH" + c,
        "sampling_rate": 100.0, "starttime": start}) for k, c in enumerate("ZNE")])
    stream.write(str(path), format="MSEED")
    return path


def test_benchmark_times_the_pick_command_as_a_user_runs_it(tmp_path, capsys):
    """Hermetic: the CLI section runs `xiaonet pick` on the benchmark's own file, in fresh
    processes, and counts the picks those processes write (the same as `main(["pick", ...])`)."""
    from xiaonet.models.presets import DEFAULT_PRESET
    from xiaonet.speed.report import CLI_COLUMNS

    data_file = synthetic_station_file(tmp_path / "XX.SYN.mseed")
    out = tmp_path / "bench.json"
    code = main(["benchmark", "runtimes", "--picker", f"{DEFAULT_PRESET}:onnx-fp32,stalta", "--data", str(data_file),
                 "--repeats", "1", "--latency-calls", "2", "--no-rss", "--workdir", str(tmp_path / "work"),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    (in_process_header, _), (header, rows) = markdown_tables(printed)
    assert in_process_header == COLUMNS and header == CLI_COLUMNS
    by_label = {row[0].strip("`"): dict(zip(CLI_COLUMNS, row)) for row in rows}
    assert list(by_label) == ["xiaonet pick FILE", "xiaonet pick FILE --picker stalta",
                              "xiaonet pick FILE --picker phasenet", "xiaonet pick --example"]
    assert "not run" in by_label["xiaonet pick FILE --picker phasenet"]["x STA/LTA RSS"]
    for label in ("xiaonet pick FILE", "xiaonet pick FILE --picker stalta", "xiaonet pick --example"):
        for column in CLI_COLUMNS:
            if column.startswith("x PhaseNet"):
                assert by_label[label][column] == "–", (label, column)  # PhaseNet was not asked for
            else:
                assert by_label[label][column] != "–", (label, column)
    assert "as a user runs it" in printed and "untimed warm-up" in printed
    assert "`xiaonet pick --example` peak RSS <= 120 MB" in printed

    cli = json.loads(out.read_text())["cli"]
    assert cli["files"] == [str(data_file)]  # the file itself, as the in-process rows read it whole
    counted = {row["label"]: row for row in cli["rows"]}
    for label, picker in (("xiaonet pick FILE", DEFAULT_PRESET), ("xiaonet pick FILE --picker stalta", "stalta")):
        table = tmp_path / f"{picker}.csv"
        assert main(["pick", str(data_file), "--picker", picker, "--out", str(table), "--no-progress"]) == 0
        expected = len(table.read_text().strip().splitlines()) - 1
        assert counted[label]["n_picks"] == expected, label
        assert counted[label]["warmup"] and len(counted[label]["cpu_seconds"]) == 1
    assert counted["xiaonet pick FILE --picker stalta"]["n_picks"] > 0
    assert counted["xiaonet pick --example"]["n_picks"] >= 0
    assert [t["met"] is not None for t in cli["targets"]] == [True, True, True, True]


def test_whole_process_memory_is_the_commands_not_the_benchmarks(tmp_path):
    """A child started from a large process inherits its peak RSS on Linux; the launcher must not."""
    import sys

    from xiaonet.speed.whole_process import run_measured

    ballast = np.ones(300 * 2**20 // 8)  # 300 MB held by this process while the child runs
    result = run_measured([sys.executable, "-S", "-c", "pass"])
    assert result["exit"] == 0 and ballast.sum() > 0
    assert result["peak_rss_mb"] < 100, result
