"""extract_fbank: features equal torchaudio's Kaldi fbank, the ark/scp pair
round-trips through kaldiio and ESPnet's kaldi_ark loader, side files, errors,
parallel and repeated runs give the same bytes."""
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi

from extract_fbank import main

FS = 16000
LENGTHS = {"a-1": FS, "a-2": 12345, "b-1": 4000}


def _raw_dir(root: Path, lengths=LENGTHS, sr=FS, channels=1) -> Path:
    d = root / "raw"
    (d / "wavs").mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    wav, text, utt2spk = [], [], []
    for utt in sorted(lengths):
        shape = (lengths[utt], channels) if channels > 1 else lengths[utt]
        path = d / "wavs" / f"{utt}.wav"
        soundfile.write(str(path), (rng.randn(*np.atleast_1d(shape)) * 2000).astype(np.int16), sr)
        wav.append(f"{utt} {path}\n")
        text.append(f"{utt} WORDS OF {utt.upper()}\n")
        utt2spk.append(f"{utt} {utt.split('-')[0]}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "text").write_text("".join(text))
    (d / "utt2spk").write_text("".join(utt2spk))
    (d / "spk2utt").write_text("a a-1 a-2\nb b-1\n")
    (d / "feats_type").write_text("raw\n")
    (d / "utt2num_samples").write_text("".join(f"{u} {n}\n" for u, n in sorted(lengths.items())))
    return d


def _reference(path: str, n_mels: int) -> np.ndarray:
    x, sr = soundfile.read(path, dtype="int16")
    wave = torch.from_numpy(x.astype(np.float32)).unsqueeze(0)
    return kaldi.fbank(
        wave, num_mel_bins=n_mels, frame_length=25, frame_shift=10, dither=0.0, sample_frequency=sr
    ).numpy()


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fbank")
    raw = _raw_dir(root)
    out = root / "fbank"
    assert main(["--in_dir", str(raw), "--out_dir", str(out), "--n_mels", "40", "--fs", str(FS)]) == 0
    return raw, out


def test_features_match_torchaudio(extracted):
    raw, out = extracted
    wavs = dict(line.split(maxsplit=1) for line in (raw / "wav.scp").read_text().splitlines())
    feats = kaldiio.load_scp(str(out / "feats.scp"))
    assert list(feats) == sorted(LENGTHS)
    for utt, n in LENGTHS.items():
        mat = feats[utt]
        assert mat.dtype == np.float32
        assert mat.shape == (1 + (n - 400) // 160, 40)
        np.testing.assert_array_equal(mat, _reference(wavs[utt], 40))


def test_ark_and_side_files(extracted):
    raw, out = extracted
    # the scp points into feats.ark by absolute path; the ark reads on its own too
    for line in (out / "feats.scp").read_text().splitlines():
        utt, spec = line.split()
        assert spec.startswith(str((out / "feats.ark").absolute()) + ":")
    from_ark = dict(kaldiio.load_ark(str(out / "feats.ark")))
    from_scp = kaldiio.load_scp(str(out / "feats.scp"))
    assert list(from_ark) == list(from_scp)
    for utt in from_ark:
        np.testing.assert_array_equal(from_ark[utt], from_scp[utt])

    frames = dict(line.split() for line in (out / "utt2num_frames").read_text().splitlines())
    assert {u: int(n) for u, n in frames.items()} == {u: m.shape[0] for u, m in from_ark.items()}
    assert (out / "feats_dim").read_text() == "40\n"
    assert (out / "feats_type").read_text() == "fbank\n"
    assert (out / "frame_shift").read_text() == "10\n"
    for name in ("text", "utt2spk", "spk2utt"):
        assert (out / name).read_text() == (raw / name).read_text(), name
    assert not (out / "wav.scp").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_espnet_kaldi_ark_loader(extracted):
    """ESPnet training reads the dir as feats.scp,speech,kaldi_ark."""
    import espnet_dld  # noqa: F401  (quiet ESPnet import)
    from espnet_dld.utils.quiet_imports import quiet_espnet_imports

    with quiet_espnet_imports():
        from espnet2.train.dataset import ESPnetDataset
    _, out = extracted
    ds = ESPnetDataset([(str(out / "feats.scp"), "speech", "kaldi_ark")])
    _, item = ds["a-2"]
    assert item["speech"].shape == (1 + (12345 - 400) // 160, 40)


def test_parallel_and_rerun_identical(tmp_path):
    raw = _raw_dir(tmp_path)
    one, two = tmp_path / "nj1", tmp_path / "nj2"
    assert main(["--in_dir", str(raw), "--out_dir", str(one)]) == 0
    assert main(["--in_dir", str(raw), "--out_dir", str(two), "--nj", "2"]) == 0
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir())
    for name in names:
        a, b = (one / name).read_bytes(), (two / name).read_bytes()
        if name == "feats.scp":  # differ only in the ark's folder
            a, b = a.replace(b"/nj1/", b"/X/"), b.replace(b"/nj2/", b"/X/")
        assert a == b, name
    before = {p.name: p.read_bytes() for p in one.iterdir()}
    mtime = (one / "text").stat().st_mtime_ns
    assert main(["--in_dir", str(raw), "--out_dir", str(one)]) == 0
    assert {p.name: p.read_bytes() for p in one.iterdir()} == before
    assert (one / "text").stat().st_mtime_ns == mtime


def test_too_short_gets_zero_frames(tmp_path, caplog):
    raw = _raw_dir(tmp_path, lengths={"a-1": FS, "a-2": 300})
    out = tmp_path / "out"
    assert main(["--in_dir", str(raw), "--out_dir", str(out)]) == 0
    assert kaldiio.load_scp(str(out / "feats.scp"))["a-2"].shape == (0, 80)
    assert "a-2 0" in (out / "utt2num_frames").read_text().splitlines()
    assert "got 0 frames" in caplog.text and "a-2" in caplog.text


@pytest.mark.parametrize(
    "kind, expected",
    [("rate", "sample rate 8000 Hz, expected --fs 16000"), ("stereo", "2 channels, expected mono")],
)
def test_bad_audio_named(tmp_path, capsys, kind, expected):
    if kind == "rate":
        raw = _raw_dir(tmp_path, sr=8000)
    else:
        raw = _raw_dir(tmp_path, channels=2)
    out = tmp_path / "out"
    assert main(["--in_dir", str(raw), "--out_dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "utterance 'a-1'" in err and str(raw / "wavs" / "a-1.wav") in err and expected in err
    assert not (out / "feats.scp").exists() and not (out / "feats.ark").exists()


def test_refuses_fbank_input(tmp_path, capsys):
    raw = _raw_dir(tmp_path)
    (raw / "feats_type").write_text("fbank\n")
    assert main(["--in_dir", str(raw), "--out_dir", str(tmp_path / "o")]) == 1
    assert "feats_type is 'fbank', expected 'raw'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_unreadable_audio_in_a_worker_process_is_named(tmp_path, capsys, kind):
    """With --nj 2 the error comes from a worker process and still names the
    utterance and its file."""
    raw = _raw_dir(tmp_path)
    bad = raw / "wavs" / "b-1.wav"
    if kind == "missing":
        bad.unlink()
    else:
        bad.write_bytes(b"not audio at all" * 20)
    out = tmp_path / "out"
    assert main(["--in_dir", str(raw), "--out_dir", str(out), "--nj", "2"]) == 1
    err = capsys.readouterr().err
    assert f"utterance 'b-1': {bad}: cannot read audio" in err
    assert not (out / "feats.scp").exists()
