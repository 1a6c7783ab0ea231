"""A horizontal channel's record (counts) as a Wood-Anderson record, fast enough for every
event version of a stream.

:class:`ChannelResponses` does what ObsPy's ``Trace.remove_response(output="VEL",
pre_filt=..., water_level=None)`` followed by ``Trace.simulate(paz_simulate=WOODANDERSON)``
does (each step, in the same order: demean, taper, demean, SAC taper, FFT, pre-filter,
inverse response, inverse FFT; demean, taper, FFT, Wood-Anderson, inverse FFT, linear
detrend, magnification), on numpy arrays and without ObsPy's per-call overhead (plugin
look-ups, deep copies of trace headers, an inventory scan per channel). What depends only on
a channel's response, its sampling interval and the FFT length (the response evaluated by
evalresp and inverted, the pre-filter, the Wood-Anderson's frequency response) is computed
once and kept; channels with equal responses (a network of one sensor type) share it.

One difference: the FFT length is the power of two at or above ObsPy's (twice the samples),
so that records of different lengths share those arrays (a few lengths per network instead
of one per record). A longer FFT only pads more zeros; the Wood-Anderson peaks differ from
ObsPy's by tens of parts per million at most (on 120 LASSO channels: 3e-6 of the peak for
windows complete to S + coda, 7e-5 for windows cut 2.4 s after P). tests/detect/test_wood_anderson.py
holds them under 1e-4 and checks bit-for-bit equality where ObsPy's length is a power of two.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import obspy
import scipy.signal

#: Trace.simulate's Wood-Anderson sensitivity (obspy.signal.invsim.WOODANDERSON; a test checks
#: they agree). obspy.signal is imported only where a response is evaluated: xiaonet stream
#: without --detect loads this module through the online associator and must stay light.
WOOD_ANDERSON_SENSITIVITY = 2080

GROUND_MOTION_UNITS = ("M", "M/S", "M/S**2", "M/S/S", "M/S2")
PRE_FILTER_LOW_HZ = (0.5, 1.0)  # below the Wood-Anderson's 1.25 Hz corner; deconvolving lower amplifies noise
TAPER_FRACTION = 0.05  # of the record, at each end, at most TAPER_MAX_S
TAPER_MAX_S = 2.5
#: Frequency responses kept (inverted instrument responses, one per distinct response and FFT
#: length; 64 kB each at 8192 points): enough for hundreds of distinct sensors.
TRANSFER_CACHE_BYTES = 64 * 2 ** 20
NO_RESPONSE = "without an instrument response"


def fft_length(npts: int) -> int:
    """The power of two at or above twice ``npts`` (ObsPy's length dodging wrap-around is
    about twice the samples; a power of two lets records of different lengths share it)."""
    return 1 << max(1, 2 * npts - 1).bit_length()


@lru_cache(maxsize=64)
def _time_tapers(npts: int, sampling_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three time-domain tapers of the ObsPy chain for ``npts`` samples: ``Trace.taper``'s
    Hann (TAPER_FRACTION, at most TAPER_MAX_S), remove_response's SAC cosine taper and
    simulate's cosine taper (both 5 %)."""
    from obspy.signal.invsim import cosine_taper

    half = min(int(TAPER_FRACTION * npts), int(TAPER_MAX_S * sampling_rate), int(npts / 2))
    sides = scipy.signal.windows.hann(2 * half if 2 * half == npts else 2 * half + 1)
    hann = np.hstack((sides[:half], np.ones(npts - 2 * half), sides[len(sides) - half:]))
    return (hann, cosine_taper(npts, 0.05, sactaper=True, halfcosine=False), cosine_taper(npts, 0.05))


@lru_cache(maxsize=16)
def _shared_transfer(delta: float, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """The pre-filter (a cosine taper from PRE_FILTER_LOW_HZ to 0.8-0.9 x Nyquist) and the
    Wood-Anderson's frequency response at the FFT's frequencies: the same for every channel."""
    from obspy.signal.invsim import WOODANDERSON, cosine_sac_taper, paz_to_freq_resp

    nyquist = 0.5 / delta
    frequencies = np.linspace(0, 1 / (delta * 2.0), nfft // 2 + 1)  # as Response.get_evalresp_response
    pre_filter = cosine_sac_taper(frequencies, flimit=(*PRE_FILTER_LOW_HZ, 0.8 * nyquist, 0.9 * nyquist))
    wood_anderson = paz_to_freq_resp(WOODANDERSON["poles"], WOODANDERSON["zeros"], WOODANDERSON["gain"], delta, nfft)
    return pre_filter, wood_anderson


class ChannelResponses:
    """The channels of an ObsPy ``Inventory`` (``None``: no responses), indexed once by seed id
    (a change to the inventory afterwards is not seen), with the frequency responses of
    :meth:`wood_anderson_mm` kept between calls."""

    def __init__(self, inventory):
        self.inventory = inventory
        self._channels: dict[str, list] = {}  # seed id -> [(first ns, last ns, channel)] with a response
        for network in inventory or []:
            for station in network:
                for channel in station:
                    if channel.response is None:
                        continue
                    seed_id = f"{network.code}.{station.code}.{channel.location_code}.{channel.code}"
                    self._channels.setdefault(seed_id, []).append((
                        -math.inf if channel.start_date is None else channel.start_date.ns,
                        math.inf if channel.end_date is None else channel.end_date.ns, channel))
        self._problems: dict[int, str | None] = {}  # id(channel) -> problem()
        self._response_keys: dict[int, int] = {}  # id(response) -> key of the equal response first seen
        self._distinct: dict[str, list] = {}  # printed summary -> [(response, key)], to find equal ones
        self._inverse: OrderedDict = OrderedDict()  # (response key, delta, nfft) -> 1 / response
        self._inverse_bytes = 0

    def channel(self, seed_id: str, time):
        """The inventory's first channel ``seed_id`` with a response, active at ``time`` (as
        ``Inventory.get_response`` finds it); None without one."""
        ns = (time if isinstance(time, obspy.UTCDateTime) else obspy.UTCDateTime(time)).ns
        return next((channel for first, last, channel in self._channels.get(seed_id, ()) if first <= ns <= last), None)

    def problem(self, seed_id: str, time) -> str | None:
        """Why the channel's response cannot make ground motion (None when it can)."""
        channel = self.channel(seed_id, time)
        if channel is None:
            return NO_RESPONSE
        if id(channel) not in self._problems:
            self._problems[id(channel)] = self._channel_problem(channel)
        return self._problems[id(channel)]

    @staticmethod
    def _channel_problem(channel) -> str | None:
        response = channel.response
        sensitivity = response.instrument_sensitivity
        if sensitivity is None or not sensitivity.value or not response.response_stages:
            return NO_RESPONSE
        units = (sensitivity.input_units or "").upper().replace(" ", "")
        if units not in GROUND_MOTION_UNITS:
            return f"with a response from {sensitivity.input_units or 'unknown units'}, not ground motion (m, m/s, m/s**2)"
        if channel.latitude is None or channel.longitude is None:
            return "without station coordinates"
        return None

    def _response_key(self, response) -> int:
        key = self._response_keys.get(id(response))
        if key is None:
            similar = self._distinct.setdefault(str(response), [])
            key = next((k for other, k in similar if other == response), None)
            if key is None:
                key = len(self._response_keys)
                similar.append((response, key))
            self._response_keys[id(response)] = key
        return key

    def _inverse_response(self, response, delta: float, nfft: int) -> np.ndarray:
        """1 / the response (counts per m/s) at the FFT's frequencies, 0 at 0 Hz (remove_response
        without a water level)."""
        key = (self._response_key(response), delta, nfft)
        inverse = self._inverse.get(key)
        if inverse is None:
            inverse, _ = response.get_evalresp_response(delta, nfft, output="VEL")
            inverse[0] = 0.0
            inverse[1:] = 1.0 / inverse[1:]
            self._inverse[key] = inverse
            self._inverse_bytes += inverse.nbytes
            while self._inverse_bytes > TRANSFER_CACHE_BYTES and len(self._inverse) > 1:
                self._inverse_bytes -= self._inverse.popitem(last=False)[1].nbytes
        else:
            self._inverse.move_to_end(key)
        return inverse

    def wood_anderson_mm(self, seed_id: str, time, data: np.ndarray, sampling_rate: float) -> np.ndarray:
        """``data`` (counts of channel ``seed_id`` at ``time``, whose :meth:`problem` is None)
        as a Wood-Anderson record in mm (magnification 2080)."""
        response = self.channel(seed_id, time).response
        npts, delta = len(data), 1.0 / sampling_rate
        hann, sac_taper, simulate_taper = _time_tapers(npts, sampling_rate)
        nfft = fft_length(npts)
        pre_filter, wood_anderson = _shared_transfer(delta, nfft)
        record = data - np.mean(data, 0, keepdims=True)  # Trace.detrend("demean"): float32 stays float32
        record *= hann
        # Trace.remove_response
        record = record.astype(np.float64)
        record -= record.sum() / npts  # ndarray.mean's sum and division, without its overhead
        record *= sac_taper
        spectrum = np.fft.rfft(record, n=nfft)
        spectrum *= pre_filter
        spectrum *= self._inverse_response(response, delta, nfft)
        spectrum[-1] = abs(spectrum[-1]) + 0.0j
        record = np.fft.irfft(spectrum)[0:npts]
        # Trace.simulate(paz_simulate=WOODANDERSON): m/s in, metres on the drum x 2080 out
        record -= record.sum() / npts
        record *= simulate_taper
        spectrum = np.fft.rfft(record, n=nfft)
        spectrum *= wood_anderson
        spectrum[-1] = abs(spectrum[-1]) + 0.0j
        record = np.fft.irfft(spectrum)[0:npts]
        record -= record[0] + np.arange(npts) * (record[-1] - record[0]) / float(npts - 1)  # PITSA's detrend
        record *= WOOD_ANDERSON_SENSITIVITY
        record *= 1000.0
        return record
