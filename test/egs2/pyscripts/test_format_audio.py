"""format_audio: audio checks, resampling, in-place references, bad-utterance
handling (stop / drop) and deterministic re-runs."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from format_audio import format_audio, main

FS = 16000


def _write(path: Path, samples: np.ndarray, sr: int, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, sr, format=fmt, subtype="PCM_16")
    return path


def _noise(n: int, seed: int, channels: int = 1) -> np.ndarray:
    x = (np.random.RandomState(seed).randn(n, channels) * 3000).astype(np.int16)
    return x[:, 0] if channels == 1 else x


def _sine(freq: float, sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


def _data_dir(root: Path, wavs: dict) -> Path:
    """Kaldi dir for {utt: wav entry}; speaker = utt prefix before '-'."""
    d = root / "data" / "train"
    d.mkdir(parents=True, exist_ok=True)
    utts = sorted(wavs)
    (d / "wav.scp").write_text("".join(f"{u} {wavs[u]}\n" for u in utts))
    (d / "text").write_text("".join(f"{u} HELLO {u.upper()}\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    spk = {}
    for u in utts:
        spk.setdefault(u.split("-")[0], []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk.items())))
    return d


def _kv(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


@pytest.fixture
def good(tmp_path):
    """Mono 16 kHz WAV and FLAC (in place), 8 kHz WAV and 22.05 kHz WAV (resampled)."""
    w = tmp_path / "wav"
    wavs = {
        "a-1": _write(w / "a1.wav", _noise(FS, 1), FS),
        "a-2": _write(w / "a2.flac", _noise(FS // 2, 2), FS, fmt="FLAC"),
        "b-1": _write(w / "b1.wav", _sine(440, 8000, 1.0), 8000),
        "b-2": _write(w / "b2.wav", _noise(22050 // 2, 3), 22050),
    }
    return _data_dir(tmp_path, {u: str(p) for u, p in wavs.items()}), wavs


def test_good_dir(tmp_path, good):
    in_dir, wavs = good
    out = tmp_path / "dump" / "raw" / "train"
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out), "--fs", str(FS)]) == 0

    wav_scp = _kv(out / "wav.scp")
    assert list(wav_scp) == ["a-1", "a-2", "b-1", "b-2"]
    # mono files at --fs are referenced in place, by absolute path
    assert wav_scp["a-1"] == str(wavs["a-1"].absolute())
    assert wav_scp["a-2"] == str(wavs["a-2"].absolute())
    # others are resampled into out/data as 16-bit PCM at --fs
    for utt, n_in, sr_in in (("b-1", 8000, 8000), ("b-2", 22050 // 2, 22050)):
        path = Path(wav_scp[utt])
        assert path.is_absolute() and path.parent == (out / "data").absolute()
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (FS, 1, "PCM_16", "WAV")
        assert info.frames == int(np.ceil(n_in * FS / sr_in))
    assert sorted(p.name for p in (out / "data").iterdir()) == ["b-1.wav", "b-2.wav"]

    num = {u: int(n) for u, n in _kv(out / "utt2num_samples").items()}
    assert num == {u: soundfile.info(p).frames for u, p in wav_scp.items()}
    assert num["a-1"] == FS and num["b-1"] == FS
    assert (out / "feats_type").read_text() == "raw\n"
    assert (out / "text").read_text() == (in_dir / "text").read_text()
    assert (out / "utt2spk").read_text() == (in_dir / "utt2spk").read_text()
    assert (out / "spk2utt").read_text() == "a a-1 a-2\nb b-1 b-2\n"
    assert (out / "bad_utts.txt").read_text() == ""


def test_resampled_signal(tmp_path, good):
    """The 8 kHz 440 Hz sine comes out as a 16 kHz 440 Hz sine."""
    in_dir, _ = good
    out = tmp_path / "out"
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out)]) == 0
    y, sr = soundfile.read(_kv(out / "wav.scp")["b-1"], dtype="float64")
    ref = _sine(440, FS, 1.0) / 32768.0
    assert sr == FS and len(y) == len(ref)
    mid = slice(800, -800)  # away from the filter's edge effects
    assert np.max(np.abs(y[mid] - ref[mid])) < 0.01


def test_rerun_is_identical_and_untouched(tmp_path, good):
    in_dir, _ = good
    out = tmp_path / "out"
    args = ["--in_dir", str(in_dir), "--out_dir", str(out)]
    assert main(args) == 0
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    (out / "data" / "stale.wav").write_bytes(b"old")
    assert main(args) == 0
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files  # stale file removed
    for p, (data, mtime) in before.items():
        assert p.read_bytes() == data, p
        if p.parent == out:  # text outputs with unchanged content are not rewritten
            assert p.stat().st_mtime_ns == mtime, p


def _bad_case(kind: str, w: Path):
    """(wav.scp entry, reason substring) of one kind of bad recording."""
    w.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return str(w / "nope.wav"), "file not found"
    if kind == "zero_length":
        (w / "empty.wav").write_bytes(b"")
        return str(w / "empty.wav"), "empty file (0 bytes)"
    if kind == "truncated":
        full = _write(w / "full.wav", _noise(FS, 7), FS).read_bytes()
        (w / "trunc.wav").write_bytes(full[: len(full) // 2])
        return str(w / "trunc.wav"), "truncated: WAV header declares 16000 samples"
    if kind == "truncated_flac":
        full = _write(w / "full.flac", _noise(FS, 7), FS, fmt="FLAC").read_bytes()
        (w / "trunc.flac").write_bytes(full[: len(full) // 2])
        return str(w / "trunc.flac"), "corrupt or truncated audio"
    if kind == "corrupt":
        (w / "garbage.wav").write_bytes(b"this is not audio" * 50)
        return str(w / "garbage.wav"), "unreadable or corrupt audio"
    if kind == "no_samples":
        _write(w / "nosamples.wav", np.zeros(0, dtype=np.int16), FS)
        return str(w / "nosamples.wav"), "no audio samples"
    if kind == "stereo":
        _write(w / "stereo.wav", _noise(FS, 8, channels=2), FS)
        return str(w / "stereo.wav"), "2 channels"
    if kind == "pipe":
        return "sox x.wav -t wav - |", "command pipe is not supported"
    raise AssertionError(kind)


BAD_KINDS = ["missing", "zero_length", "truncated", "truncated_flac", "corrupt", "no_samples", "stereo", "pipe"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_utterance_stops(tmp_path, capsys, kind):
    w = tmp_path / "wav"
    entry, reason = _bad_case(kind, w)
    in_dir = _data_dir(tmp_path, {"a-1": str(_write(w / "ok.wav", _noise(FS, 1), FS)), "a-2": entry})
    out = tmp_path / "out"
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out)]) == 1
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "a-2" in ln)
    assert entry in line and reason in line, err
    assert "a-1 " not in err and "--drop_bad_utts true" in err
    # the list is written; nothing else is
    assert sorted(p.name for p in out.iterdir()) == ["bad_utts.txt"]
    utt, file, why = (out / "bad_utts.txt").read_text().rstrip("\n").split("\t")
    assert (utt, file) == ("a-2", entry) and reason in why


def test_drop_bad_utts(tmp_path, caplog):
    w = tmp_path / "wav"
    entries = {kind: _bad_case(kind, w)[0] for kind in ("missing", "stereo", "truncated")}
    in_dir = _data_dir(
        tmp_path,
        {
            "a-1": str(_write(w / "ok1.wav", _noise(FS, 1), FS)),
            "a-2": entries["missing"],
            "b-1": entries["stereo"],  # all of speaker b is bad
            "b-2": entries["truncated"],
            "c-1": str(_write(w / "ok2.wav", _noise(8000, 2), 8000)),
        },
    )
    out = tmp_path / "out"
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out), "--drop_bad_utts", "true"]) == 0
    bad = [ln.split("\t") for ln in (out / "bad_utts.txt").read_text().splitlines()]
    assert [(u, f) for u, f, _ in bad] == [
        ("a-2", entries["missing"]),
        ("b-1", entries["stereo"]),
        ("b-2", entries["truncated"]),
    ]
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples"):
        assert list(_kv(out / name)) == ["a-1", "c-1"], name
    assert (out / "spk2utt").read_text() == "a a-1\nc c-1\n"
    assert "dropping 3 bad utterance(s) of 5" in caplog.text


def test_all_bad_dropped_is_an_error(tmp_path, capsys):
    in_dir = _data_dir(tmp_path, {"a-1": str(tmp_path / "missing.wav")})
    out = tmp_path / "out"
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out), "--drop_bad_utts", "true"]) == 1
    assert "no usable utterance" in capsys.readouterr().err
    assert not (out / "wav.scp").exists()


def test_downmix_and_flac(tmp_path):
    w = tmp_path / "wav"
    stereo = _noise(FS, 8, channels=2)
    in_dir = _data_dir(tmp_path, {"a-1": str(_write(w / "st.wav", stereo, FS))})
    out = tmp_path / "out"
    args = ["--in_dir", str(in_dir), "--out_dir", str(out), "--downmix", "true", "--audio_format", "flac"]
    assert main(args) == 0
    path = _kv(out / "wav.scp")["a-1"]
    assert path.endswith("/data/a-1.flac")
    y, sr = soundfile.read(path, dtype="int16")
    assert sr == FS and y.ndim == 1
    expected = np.rint(stereo.astype(np.float64).mean(axis=1))
    assert np.max(np.abs(y - expected)) <= 1


def test_bad_options(tmp_path, capsys):
    assert main(["--in_dir", str(tmp_path / "nope"), "--out_dir", str(tmp_path / "o")]) == 1
    assert "--in_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--in_dir", "x", "--out_dir", "y", "--drop_bad_utts", "maybe"])


def _segmented_dir(root: Path, recordings: dict, segments: list) -> Path:
    """Kaldi dir with a segments file: {recording: file}, [(utt, recording, start, end)]."""
    d = root / "data" / "seg"
    d.mkdir(parents=True, exist_ok=True)
    (d / "wav.scp").write_text("".join(f"{r} {recordings[r]}\n" for r in sorted(recordings)))
    rows = sorted(segments)
    (d / "segments").write_text("".join(f"{u} {r} {s} {e}\n" for u, r, s, e in rows))
    (d / "text").write_text("".join(f"{u} WORDS OF {u.upper()}\n" for u, *_ in rows))
    (d / "utt2spk").write_text("".join(f"{u} {r}\n" for u, r, *_ in rows))
    spk = {}
    for u, r, *_ in rows:
        spk.setdefault(r, []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk.items())))
    return d


def test_segments_are_cut_from_sphere_and_bad_ones_listed_with_their_line(tmp_path):
    talk = _noise(3 * FS, 7)
    stereo8k = _noise(2 * 8000, 8, channels=2)
    recs = {"rec1": _write(tmp_path / "rec1.sph", talk, FS, fmt="NIST"),
            "rec2": _write(tmp_path / "rec2.wav", stereo8k, 8000)}
    in_dir = _segmented_dir(tmp_path, recs, [
        ("rec1-a", "rec1", "0.5", "1.25"), ("rec1-b", "rec1", "2.5", "-1"), ("rec1-c", "rec1", "2.9", "3.005"),
        ("rec1-d", "rec1", "1.0", "0.5"), ("rec1-e", "rec1", "3.5", "4"), ("rec1-f", "rec1", "2", "3.2"),
        ("rec1-g", "rec1", "-0.1", "1"), ("rec1-h", "rec1", "1.00001", "1.00002"), ("rec2-a", "rec2", "0.5", "1.5"),
    ])
    out = tmp_path / "dump"
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out), "--fs", str(FS), "--downmix", "true"]) == 0
    wav = _kv(out / "wav.scp")
    assert sorted(wav) == ["rec1-a", "rec1-b", "rec1-c", "rec2-a"]
    np.testing.assert_array_equal(soundfile.read(wav["rec1-a"], dtype="int16")[0], talk[8000:20000])
    np.testing.assert_array_equal(soundfile.read(wav["rec1-b"], dtype="int16")[0], talk[40000:])  # -1: to the end
    np.testing.assert_array_equal(soundfile.read(wav["rec1-c"], dtype="int16")[0], talk[46400:])  # clipped (< 0.01 s)
    assert _kv(out / "utt2num_samples")["rec2-a"] == str(FS)  # 8 kHz stereo: downmixed, resampled
    assert _kv(out / "text")["rec1-a"] == "WORDS OF REC1-A" and "rec1-d" not in _kv(out / "utt2spk")
    bad = {line.split("\t")[0]: line.split("\t")[1:] for line in (out / "bad_utts.txt").read_text().splitlines()}
    seg_file = in_dir / "segments"
    assert bad == {
        "rec1-d": [f"{seg_file}:4", "segment 1-0.5 s: end <= start"],
        "rec1-e": [f"{seg_file}:5", "segment 3.5-4 s: starts at or after the end of rec1 (3.000 s)"],
        "rec1-f": [f"{seg_file}:6", "segment 2-3.2 s: ends after the end of rec1 (3.000 s)"],
        "rec1-g": [f"{seg_file}:7", "segment -0.1-1 s: negative start"],
        "rec1-h": [f"{seg_file}:8", "segment 1-1 s: zero length at 16000 Hz"],
    }


def test_unreadable_recording_stops_with_its_segments_or_drops_them(tmp_path):
    recs = {"rec1": _write(tmp_path / "rec1.wav", _noise(FS, 1), FS), "rec2": tmp_path / "gone.sph"}
    in_dir = _segmented_dir(tmp_path, recs, [("rec1-a", "rec1", "0", "0.5"), ("rec2-a", "rec2", "0", "0.5"),
                                             ("rec2-b", "rec2", "0.5", "1")])
    out = tmp_path / "dump"
    with pytest.raises(ValueError, match=r"2 bad utterance\(s\) of 3 in .*segments:\n  rec2-a  .*gone.sph: "
                                         r"recording rec2: file not found"):
        format_audio(in_dir, out, fs=FS)
    assert not (out / "wav.scp").exists() and len((out / "bad_utts.txt").read_text().splitlines()) == 2
    assert main(["--in_dir", str(in_dir), "--out_dir", str(out), "--drop_bad_utts", "true"]) == 0
    assert list(_kv(out / "wav.scp")) == ["rec1-a"]
