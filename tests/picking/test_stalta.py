import obspy
import pytest

from xiaonet.picking.stalta import StaLtaConfig, StaLtaPicker


def test_stalta_finds_the_p_onset_of_obspys_example(example_stream):
    picks = StaLtaPicker().pick(example_stream)
    p_picks = [p for p in picks if p.phase == "P"]
    assert len(p_picks) == 1
    assert abs(p_picks[0].peak_time - obspy.UTCDateTime("2009-08-24T00:20:07.7")) < 0.25
    assert p_picks[0].trace_id == "BW.RJOB."
    assert 0 < p_picks[0].peak_value <= 1


def test_classic_method_agrees(example_stream):
    picks = StaLtaPicker(method="classic").pick(example_stream)
    assert abs(picks[0].peak_time - obspy.UTCDateTime("2009-08-24T00:20:07.7")) < 0.25


def test_no_trigger_on_noise():
    import numpy as np

    rng = np.random.default_rng(0)
    tr = obspy.Trace(rng.normal(size=6000), header={"sampling_rate": 100, "channel": "HHZ", "station": "N"})
    assert StaLtaPicker().pick(obspy.Stream([tr])) == []


def test_bad_config_names_the_options():
    with pytest.raises(ValueError, match="recursive"):
        StaLtaConfig(method="fancy")
    with pytest.raises(ValueError, match="sta < lta"):
        StaLtaConfig(sta=5, lta=1)


@pytest.mark.parametrize("method", ["recursive", "classic"])
def test_sta_lta_equals_obspy_without_importing_obspy_signal(method):
    """ObsPy's functions are the oracle; ours keep obspy.signal (and its matplotlib) out."""
    import numpy as np
    from obspy.signal import trigger

    from xiaonet.picking.stalta import STA_LTA_METHODS

    rng = np.random.default_rng(0)
    x = rng.normal(size=20_000) * np.r_[np.ones(10_000), 10 * np.ones(10_000)]
    expected = getattr(trigger, f"{method}_sta_lta")(x, 50, 500)
    np.testing.assert_allclose(STA_LTA_METHODS[method](x, 50, 500), expected, rtol=1e-12, atol=1e-12)
