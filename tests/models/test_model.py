import json

import numpy as np
import obspy
import pytest
import torch

from xiaonet.models.model import XiaoNet, count_macs, count_parameters, normalize_window
from xiaonet.models.presets import PRESETS, build_student, get_preset, load_student


def seeded_student(name="xiaonet-s"):
    torch.manual_seed(0)
    return build_student(name).eval()


def test_output_is_probability_per_sample():
    model = seeded_student()
    x = torch.randn(2, 3, 3001)
    y = model(x)
    assert y.shape == (2, 3, 3001)
    assert torch.allclose(y.sum(dim=1), torch.ones(2, 3001), atol=1e-5)
    assert (y >= 0).all()


@pytest.mark.parametrize("n_samples", [1, 63, 64, 1000, 3000, 6001])
def test_any_length(n_samples):
    assert seeded_student()(torch.randn(1, 3, n_samples)).shape == (1, 3, n_samples)


def test_constructor_matches_seed_signature():
    model = XiaoNet(window_len=1001, in_channels=3, num_phases=3, base_channels=4)
    assert model.in_samples == 1001 and model.labels == "PSN"
    with pytest.raises(ValueError, match="num_phases"):
        XiaoNet(window_len=1001, num_phases=2)


def test_presets_sizes():
    sizes = {name: count_parameters(build_student(name)) for name in PRESETS}
    assert sizes["xiaonet-s"] <= 10_000
    assert sizes["xiaonet-xs"] < sizes["xiaonet-s"] < sizes["xiaonet-m"]
    assert count_macs(build_student("xiaonet-s"), 3001) < 19.5e6 / 9  # PhaseNet: 19.5 M


def test_unknown_preset_lists_known():
    with pytest.raises(ValueError, match="xiaonet-s"):
        get_preset("xiaonet-huge")
    with pytest.raises(ValueError, match="xiaonet-xs"):
        load_student("xiaonet-huge")


def test_save_load_round_trip_is_exact(tmp_path):
    model = seeded_student()
    model.default_args = {"P_threshold": 0.41}
    model.save(tmp_path / "student")
    meta = json.loads((tmp_path / "student.json").read_text())
    assert meta["model_args"]["base_channels"] == 4
    loaded = load_student(str(tmp_path / "student"))
    # weights_only loading works: plain tensors only in the .pt
    torch.load(tmp_path / "student.pt", weights_only=True)
    x = torch.randn(3, 3, 3001)
    assert torch.equal(model(x), loaded(x))
    assert loaded.default_args == {"P_threshold": 0.41}
    st = obspy.read()
    a = model.annotate(st)
    b = loaded.annotate(st)
    for ta, tb in zip(a, b):
        np.testing.assert_array_equal(ta.data, tb.data)


def test_normalisation_is_scale_invariant_and_zero_safe():
    x = torch.randn(2, 3, 500, dtype=torch.float32)
    a = normalize_window(x * 1e6)
    b = normalize_window((x.double() * 1e-20).float())
    assert torch.allclose(a, b, atol=1e-4)
    zeros = torch.zeros(1, 3, 100)
    assert torch.equal(normalize_window(zeros), zeros)
    one_channel = torch.zeros(1, 3, 100)
    one_channel[0, 0] = torch.randn(100)
    out = normalize_window(one_channel)
    assert torch.isfinite(out).all() and (out[0, 1:] == 0).all()


def test_constant_channels_normalise_to_zero_not_to_rounding_noise():
    # a DC offset (dead or clipped stretch) used to come out as rounding residue x 1e12
    x = torch.full((1, 3, 3001), 123456.7, dtype=torch.float32)
    out = normalize_window(x)
    assert torch.equal(out, torch.zeros_like(out))
    # one live channel beside two constant ones: the live one is normalised as alone
    live = torch.randn(3001)
    mixed = torch.stack([live + 5e4, torch.full((3001,), 7e5), torch.full((3001,), -3.0)])[None]
    alone = torch.zeros(1, 3, 3001)
    alone[0, 0] = live
    np.testing.assert_allclose(normalize_window(mixed)[0, 0], normalize_window(alone)[0, 0], atol=1e-2)  # float32 steps at 5e4
    assert (normalize_window(mixed)[0, 1:] == 0).all()
    # a small signal riding on a large offset is still a signal
    small = torch.randn(3001) * 10 + 1e6
    assert normalize_window(small.expand(1, 3, -1).clone()).std() > 0.5


def test_same_picks_in_counts_and_in_physical_units():
    model = seeded_student()
    counts = obspy.read()
    for tr in counts:
        tr.data = tr.data.astype(np.float64) / np.abs(tr.data).max() * 1e6
    physical = counts.copy()
    for tr in physical:
        tr.data = tr.data * 1e-26  # ~1e-20 m/s
    ann_counts = model.annotate(counts)
    ann_physical = model.annotate(physical)
    assert len(ann_counts) == 3
    for a, b in zip(ann_counts, ann_physical):
        np.testing.assert_allclose(a.data, b.data, atol=1e-4)
    # thresholds low enough that the untrained network picks something
    p_level = float(np.quantile(ann_counts.select(channel="*_P")[0].data, 0.99))
    args = dict(P_threshold=p_level, S_threshold=1.1)
    picks_counts = model.classify(counts, **args).picks
    picks_physical = model.classify(physical, **args).picks
    assert len(picks_counts) > 0
    assert [(p.phase, p.peak_time) for p in picks_counts] == [
        (p.phase, p.peak_time) for p in picks_physical
    ]


def test_annotate_handles_short_record_missing_components_and_resampling():
    model = seeded_student()
    st = obspy.read()
    st_z = st.select(component="Z")
    assert len(model.annotate(st_z)) == 3  # vertical only: horizontals imputed as zeros
    st_50 = st.copy().resample(50.0)
    ann = model.annotate(st_50)
    assert ann[0].stats.sampling_rate == 100.0
    short = st.copy().trim(st[0].stats.starttime, st[0].stats.starttime + 10)
    assert len(model.annotate(short)) == 3  # shorter than the 30 s window


def test_aligned_upsampling_puts_coarse_features_where_they_came_from():
    """With centred transposed convolutions an impulse's response is centred on it at every
    level; the original kernel == stride upsampling shifts it late."""
    def centre_of_response(aligned: bool) -> float:
        torch.manual_seed(0)
        model = XiaoNet(window_len=4096, base_channels=2, aligned_upsampling=aligned)
        with torch.no_grad():
            for module in model.modules():  # flat kernels: any shift comes from the placement
                if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            x = torch.zeros(1, 3, 4096)
            x[0, 0, 2048] = 1.0
            z = torch.nn.functional.relu(model.stem(x))
            for down, refine in zip(model.down, model.down_refine):
                z = torch.nn.functional.relu(refine(torch.nn.functional.relu(down(z))))
            for up in model.up:  # coarse path only: no skip can repair the placement
                z = up(z)
            weights = z.abs().sum(dim=(0, 1))
        positions = torch.arange(weights.numel(), dtype=torch.float32)
        # level-0 sample i is centred on input sample stride * i + (stride - 1) / 2 (the stem)
        return float((weights * positions).sum() / weights.sum()) * model.stride + (model.stride - 1) / 2
    assert abs(centre_of_response(True) - 2048) < 4
    assert centre_of_response(False) - 2048 > 60


def test_aligned_upsampling_round_trips_and_keeps_any_length(tmp_path):
    model = XiaoNet(window_len=3001, base_channels=4, aligned_upsampling=True)
    for n in (1, 257, 3001):
        assert model(torch.randn(1, 3, n)).shape == (1, 3, n)
    model.save(tmp_path / "aligned")
    loaded = load_student(str(tmp_path / "aligned"))
    assert loaded.aligned_upsampling
    x = torch.randn(2, 3, 3001)
    assert torch.equal(model(x), loaded(x))


def test_capabilities_not_class_names_decide_how_a_model_is_run():
    """Code asks a model what it can do (any length, normalisation inside), never its name."""
    from xiaonet.picking.pickers import ModelPicker

    class RenamedStudent(XiaoNet):
        pass

    student = RenamedStudent(window_len=1001, base_channels=2)
    assert student.fully_convolutional and student.normalises_in_forward
    # records shorter than a window are picked; only those under the 1 s minimum get a note
    assert ModelPicker(student).min_duration == 1.0 < (1001 - 1) / 100
    fixed_window = XiaoNet(window_len=1001, base_channels=2)
    fixed_window.fully_convolutional = False  # as a teacher: SeisBench drops shorter records
    assert ModelPicker(fixed_window).min_duration == pytest.approx(10.0)


def test_the_private_seisbench_settings_we_read_still_exist():
    """models.annotate_settings reads SeisBench's private _annotate_args / _grouping: a
    SeisBench release that renames them must fail here."""
    import seisbench.models as sbm

    from xiaonet.models.annotate_settings import annotate_setting, default_threshold, min_record_seconds
    from xiaonet.models.presets import build_student

    for key in ("overlap", "stacking", "batch_size"):
        assert key in sbm.WaveformModel._annotate_args, key
    student = build_student("xiaonet-s")
    assert hasattr(student, "_grouping") and hasattr(student._grouping, "min_record_s")
    assert annotate_setting(student, "overlap") == 0.25  # the student's own default
    assert annotate_setting(student, "overlap", {"overlap": 0.5}) == 0.5
    assert annotate_setting(student, "no_such_setting", default="x") == "x"
    assert default_threshold(student, "P", {"P_threshold": 0.42}) == 0.42
    assert 0 < min_record_seconds(student) <= student.in_samples / student.sampling_rate
