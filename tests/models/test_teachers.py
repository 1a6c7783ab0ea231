import pytest

from xiaonet.models.teachers import TeacherUnavailable, load_teacher


def test_missing_weights_name_the_cache_variable_and_file(tmp_path, monkeypatch):
    import seisbench

    monkeypatch.setattr(seisbench, "cache_root", tmp_path)
    with pytest.raises(TeacherUnavailable) as info:
        load_teacher("phasenet", "original")
    message = str(info.value)
    assert "SEISBENCH_CACHE_ROOT" in message
    assert str(tmp_path / "models" / "v3" / "phasenet" / "original.pt.v1") in message


def test_unknown_teacher_lists_known():
    with pytest.raises(ValueError, match="eqtransformer"):
        load_teacher("gpt")


def test_teachers_load_offline_from_the_shared_cache(teacher_cache):
    phasenet = load_teacher("phasenet")
    assert phasenet.labels == "NPS"
    eqt = load_teacher("eqtransformer", "original")
    assert eqt.in_samples == 6000
