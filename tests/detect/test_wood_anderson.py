"""The Wood-Anderson records of `xiaonet.detect.wood_anderson` are ObsPy's: bit for bit where
ObsPy's FFT length is a power of two, within 1e-4 of the peak elsewhere (the one difference:
a power-of-two FFT length); responses are evaluated once per distinct response and length."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
from obspy.signal.invsim import WOODANDERSON

from tests.detect.test_magnitude import RATE, burst, inventory_for, record
from xiaonet.detect import wood_anderson
from xiaonet.detect.wood_anderson import ChannelResponses, fft_length


def obspy_wood_anderson_mm(trace: obspy.Trace, inventory) -> np.ndarray:
    """The reference: ObsPy's response removal and Wood-Anderson simulation (what
    detect.magnitude called before the chain was kept per channel)."""
    trace = trace.copy()
    trace.detrend("demean")
    trace.taper(0.05, max_length=2.5)
    nyquist = 0.5 * trace.stats.sampling_rate
    trace.remove_response(inventory=inventory, output="VEL", pre_filt=(0.5, 1.0, 0.8 * nyquist, 0.9 * nyquist),
                          water_level=None)
    trace.simulate(paz_remove=None, paz_simulate=WOODANDERSON)
    return trace.data * 1000.0


@pytest.mark.parametrize("sensor", ["geophone", "accelerometer"])
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
def test_the_chain_is_obspys(sensor, dtype):
    inventory = inventory_for({"A": (36.7, -97.7)}, sensor)
    responses = ChannelResponses(inventory)
    full = record(inventory, "XX.A..HHE", burst(1.0e-6, start_s=16.0) * (1e3 if dtype is np.int32 else 1.0))
    full.data = full.data.astype(dtype)
    for npts in (2048, 2001, 1537, 3000):  # 2048: ObsPy's FFT length is 4096, a power of two
        trace = full.copy()
        trace.data = trace.data[1000:1000 + npts]
        ours = responses.wood_anderson_mm(trace.id, trace.stats.starttime, trace.data, RATE)
        reference = obspy_wood_anderson_mm(trace, inventory)
        assert ours.dtype == np.float64 and len(ours) == npts
        if npts == 2048:
            assert np.array_equal(ours, reference), (sensor, dtype)
        else:
            assert np.abs(ours - reference).max() < 1e-4 * np.abs(reference).max(), (sensor, dtype, npts)
    assert fft_length(2048) == 4096 and fft_length(2001) == 4096 and fft_length(2049) == 8192


def test_equal_responses_are_evaluated_once_per_fft_length(monkeypatch):
    inventory = inventory_for({"A": (36.7, -97.7), "B": (36.8, -97.7)}, "geophone")
    responses = ChannelResponses(inventory)
    data = np.random.default_rng(1).normal(0.0, 1.0, 3000)
    for seed_id in ("XX.A..HHE", "XX.A..HHN", "XX.B..HHE"):
        for npts in (2000, 1900, 3000):  # 4096, 4096, 8192 points
            responses.wood_anderson_mm(seed_id, obspy.UTCDateTime(2020, 1, 1), data[:npts], RATE)
    assert sorted(key[2] for key in responses._inverse) == [4096, 8192]
    other = inventory_for({"C": (36.7, -97.7)}, "quiet geophone")  # another gain: its own response
    inventory.networks[0].stations += other.networks[0].stations
    responses = ChannelResponses(inventory)
    for seed_id in ("XX.A..HHE", "XX.C..HHE"):
        responses.wood_anderson_mm(seed_id, obspy.UTCDateTime(2020, 1, 1), data[:2000], RATE)
    assert len(responses._inverse) == 2
    # the kept responses are bounded: the least recently used goes first
    monkeypatch.setattr(wood_anderson, "TRANSFER_CACHE_BYTES", 4097 * 16)  # one response at 8192 points
    responses.wood_anderson_mm("XX.A..HHE", obspy.UTCDateTime(2020, 1, 1), data[:3000], RATE)
    assert [key[2] for key in responses._inverse] == [8192]


def test_the_channel_of_the_epoch_and_why_one_is_unusable():
    inventory = inventory_for({"A": (36.7, -97.7)}, "geophone")
    channels = inventory.networks[0].stations[0].channels
    channels[0].start_date, channels[0].end_date = obspy.UTCDateTime(2019, 1, 1), obspy.UTCDateTime(2019, 12, 31)
    later = channels[0].copy()
    later.start_date, later.end_date = obspy.UTCDateTime(2020, 1, 1), None
    later.response.instrument_sensitivity.input_units = "V"
    channels.append(later)
    responses = ChannelResponses(inventory)
    assert responses.problem("XX.A..HHE", obspy.UTCDateTime(2019, 6, 1)) is None
    assert responses.problem("XX.A..HHE", obspy.UTCDateTime(2020, 6, 1)) == \
        "with a response from V, not ground motion (m, m/s, m/s**2)"
    assert responses.channel("XX.A..HHE", obspy.UTCDateTime(2018, 6, 1)) is None
    assert responses.problem("XX.B..HHE", obspy.UTCDateTime(2019, 6, 1)) == "without an instrument response"
    assert ChannelResponses(None).problem("XX.A..HHE", obspy.UTCDateTime(2019, 6, 1)) == \
        "without an instrument response"


def test_the_sensitivity_is_obspys_wood_anderson():
    from obspy.signal.invsim import WOODANDERSON

    from xiaonet.detect.wood_anderson import WOOD_ANDERSON_SENSITIVITY

    assert WOOD_ANDERSON_SENSITIVITY == WOODANDERSON["sensitivity"]
