"""The sensitivity figure: events buried in quiet real noise at an exact SNR, the same noise
window at every level, and ``xiaonet evaluate --protocol --sensitivity`` in-process."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluate.test_generalisation import attach, protocol_config, protocol_data  # noqa: F401  (fixture)
from tests.distill.test_training import FakeTeacher, tiny_config, tiny_data  # noqa: F401  (fixture)
from xiaonet.data.records import Record
from xiaonet.evaluate.sensitivity import NoiseBank, bury, sensitivity_records, snr_db


def _event(n=3000, p=1000, s=1500, dead=False):
    rng = np.random.default_rng(0)
    waveform = (rng.normal(size=(3, n)) * 0.01).astype(np.float32)
    waveform[:, p:p + 800] += np.sin(np.arange(800) / 3.0).astype(np.float32)
    if dead:
        waveform[2] = 0
    return Record("ev/1", "ev", "XX.EV", waveform, 0.0, np.array([float(p)]), np.array([float(s)]),
                  category="earthquake")


def _noise(n=5000, loud_at=None):
    rng = np.random.default_rng(1)
    curves = np.zeros((2, n), dtype=np.float16)
    if loud_at is not None:
        curves[0, loud_at] = 0.9
    return Record("noise/1", "noise", "YY.NO", rng.normal(size=(3, n)).astype(np.float32), 0.0,
                  teacher_members={"phasenet_original": curves, "eqtransformer_original": curves})


@pytest.mark.parametrize("db", [-5.0, 0.0, 20.0])
def test_bury_sets_the_snr_and_keeps_dead_components_dead(db):
    event, noise = _event(), np.random.default_rng(2).normal(size=(3, 3000))
    added = bury(event.waveform, 1000, noise, db).astype(np.float64) - event.waveform
    assert snr_db(event.waveform[:, 1000:1200], added) == pytest.approx(db, abs=0.01)  # signal: P + 2 s
    noisy = bury(_event(dead=True).waveform, 1000, noise, db)
    assert np.all(noisy[2] == 0)


def test_noise_bank_draws_only_quiet_windows_away_from_onsets():
    bank = NoiseBank([_noise(5000, loud_at=2500)], margin=200)
    offsets = bank.offsets(0, 1000)
    # a window must end before 2300 or start after 2700
    assert offsets.size and np.all((offsets + 1000 <= 2300) | (offsets >= 2701))
    assert bank.offsets(0, 2400).size == 0  # no quiet stretch that long
    a = bank.draw(1000, np.random.default_rng(5))
    assert a is not None and np.array_equal(a[0], bank.draw(1000, np.random.default_rng(5))[0])
    dead = _noise()
    dead.waveform[1] = 0
    assert NoiseBank([dead]).records == []


def test_each_event_gets_one_noise_window_scaled_per_level():
    made = sensitivity_records([_event()], [_noise()], levels=(0.0, 20.0), seed=3)
    assert made.events == 1 and [r.source for r in made.records] == ["snr+0", "snr+20"]
    event = _event().waveform.astype(np.float64)
    low, high = (r.waveform.astype(np.float64) - event for r in made.records)
    assert np.allclose(low, 10.0 * high, atol=1e-4)  # the same window, 20 dB apart
    assert made.records[0].p_samples[0] == 1000 and made.records[0].name == "ev/1@snr+0"
    assert sensitivity_records([_event(n=9000)], [_noise()]).events == 0  # no window that long


def test_evaluate_protocol_sensitivity_writes_table_csv_and_figure(protocol_data, tmp_path, capsys):  # noqa: F811
    from xiaonet.cli import main
    from xiaonet.distill.splits import load_data
    from xiaonet.distill.config import write_config

    config = protocol_config(protocol_data, tmp_path / "cache")
    config.data.networks = {}
    config.data.sources[0].role = "test"  # the labelled events
    config.data.sources[1].role = "validation"  # the quiet continuous station: the noise
    config.data.sources[2].role = "validation"
    bundle = load_data(config)
    attach(config, bundle)
    write_config(config, tmp_path / "protocol.json")
    out = tmp_path / "sens"
    assert main(["evaluate", "--protocol", str(tmp_path / "protocol.json"), "--sensitivity", "--snr", "0,10",
                 "--picker", "stalta", "--resamples", "20", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| picker | phase | +0 dB | +10 dB |" in printed and "| stalta | P |" in printed
    assert (out / "sensitivity.png").stat().st_size > 0
    assert (out / "sensitivity.csv").read_text().startswith("picker,snr_db,phase,events")
    assert main(["evaluate", "--protocol", str(tmp_path / "protocol.json"), "--sensitivity", "--snr", "x",
                 "--picker", "stalta", "--out", str(out), "--no-progress"]) == 2
