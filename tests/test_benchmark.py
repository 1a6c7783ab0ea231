"""`xiaonet benchmark` runs in-process on seconds of data and prints every column."""

import json

import numpy as np
import pytest

from xiaonet.speed.benchmarking import expand_model_specs
from xiaonet.models.cost import count_macs
from xiaonet.speed.data import BenchmarkError, synthetic_data
from xiaonet.speed.report import COLUMNS
from xiaonet.cli import main


def table_rows(text):
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return header, [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


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
        "benchmark", "--picker", "xiaonet-s:torch,xiaonet-s:onnx-fp32,xiaonet-s:onnx-int8",
        "--picker", "phasenet:seisbench,phasenet:onnx-fp32,stalta",
        "--synthetic", "40", "--repeats", "1", "--latency-calls", "3", "--out", str(out),
        "--workdir", str(tmp_path / "work"),
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
    assert len(report["targets"]) == 7
    from xiaonet.models.presets import DEFAULT_PRESET

    # speed is judged on the student `xiaonet pick` runs, size on the microcontroller student
    assert report["targets"][0]["target"].startswith(f"{DEFAULT_PRESET} (default) throughput")
    assert any(t["target"].startswith("xiaonet-s (microcontroller) int8 file") for t in report["targets"])


def test_benchmark_runs_without_shared_data_or_teachers(tmp_path, capsys):
    """Hermetic: student and STA/LTA rows only, so the ratio columns stay empty."""
    code = main(["benchmark", "--picker", "xiaonet-xs:onnx-int8,stalta", "--synthetic", "40",
                 "--repeats", "1", "--latency-calls", "2", "--workdir", str(tmp_path)])
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
    assert main(["benchmark", "--picker", "stalta", "--data", "/nonexistent/*.mseed", "--no-rss"]) == 2
    assert "no such file" in capsys.readouterr().err
