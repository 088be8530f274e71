"""LibriSpeech layout -> data dirs, on a tiny generated tree."""
from pathlib import Path

import pytest
import soundfile

from espnet_dld.data.kaldi_dir import validate_data_dir
from librispeech import (
    data_dir_name,
    main,
    make_fake_librispeech,
    prepare_librispeech,
)

SETS = ("dev-clean", "test-clean")


@pytest.fixture
def root(tmp_path):
    return make_fake_librispeech(tmp_path / "LibriSpeech", SETS, seed=3)


def _lines(path: Path):
    return path.read_text(encoding="utf-8").splitlines()


def test_prepare(root, tmp_path):
    dirs = prepare_librispeech(root, SETS, tmp_path / "data")
    assert dirs == {s: tmp_path / "data" / data_dir_name(s) for s in SETS}
    assert data_dir_name("train-clean-100") == "train_clean_100"
    d = dirs["dev-clean"]
    assert validate_data_dir(d) == 2 * 2 * 3
    wav = dict(line.split(maxsplit=1) for line in _lines(d / "wav.scp"))
    utt2spk = dict(line.split() for line in _lines(d / "utt2spk"))
    trans = {}
    for t in root.glob("dev-clean/*/*/*.trans.txt"):
        trans.update(line.split(maxsplit=1) for line in _lines(t))
    assert {k: v for k, v in (line.split(maxsplit=1) for line in _lines(d / "text"))} == trans
    for utt, path in wav.items():
        assert path.endswith(f"/{utt}.flac") and Path(path).is_absolute()
        assert utt2spk[utt] == utt.split("-")[0]
        x, sr = soundfile.read(path, dtype="int16")
        assert sr == 16000 and x.ndim == 1 and len(x) == 8000
    # the sets have different speakers
    test_spk = set(_lines(dirs["test-clean"] / "spk2utt"))
    assert not {s.split()[0] for s in test_spk} & set(utt2spk.values())


def test_deterministic_and_rerun_unchanged(root, tmp_path):
    other = make_fake_librispeech(tmp_path / "again", SETS, seed=3)
    for a in sorted(root.rglob("*")):
        if a.is_file():
            assert a.read_bytes() == (other / a.relative_to(root)).read_bytes()
    d = prepare_librispeech(root, SETS, tmp_path / "data")["dev-clean"]
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}
    prepare_librispeech(root, SETS, tmp_path / "data")
    assert before == {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}


def test_missing_set(root, tmp_path):
    with pytest.raises(ValueError, match="set folder not found: .*train-clean-100"):
        prepare_librispeech(root, ["dev-clean", "train-clean-100"], tmp_path / "data")
    assert not (tmp_path / "data").exists()  # nothing written when one set is missing


def test_missing_flac_names_trans_line(root, tmp_path):
    trans = sorted(root.glob("dev-clean/*/*/*.trans.txt"))[0]
    second = _lines(trans)[1].split()[0]
    (trans.parent / f"{second}.flac").unlink()
    with pytest.raises(ValueError) as e:
        prepare_librispeech(root, ["dev-clean"], tmp_path / "data")
    assert f"{trans}:2: audio file missing" in str(e.value)
    assert f"{second}.flac" in str(e.value)


def test_missing_trans(root, tmp_path):
    trans = sorted(root.glob("dev-clean/*/*/*.trans.txt"))[-1]
    trans.unlink()
    with pytest.raises(ValueError, match=f"{trans.name}: transcript file missing"):
        prepare_librispeech(root, ["dev-clean"], tmp_path / "data")


def test_cli(root, tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["--root", str(root), "--sets", "dev-clean", "--out", str(out)]) == 0
    assert validate_data_dir(out / "dev_clean") == 12
    assert main(["--root", str(root), "--sets", "nope", "--out", str(out)]) == 1
    assert "nope" in capsys.readouterr().err
