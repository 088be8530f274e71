"""Stage 2: speed perturbation."""
import re

import numpy as np
import pytest
import soundfile as sf

from speed_perturb import main
from espnet_dld.data.kaldi_dir import read_data_dir


def make_dir(tmp_path, fs=16000):
    data = tmp_path / "data"
    data.mkdir()
    t = np.arange(fs) / fs
    sf.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), fs, subtype="PCM_16")
    (data / "wav.scp").write_text(f"spk1-a {tmp_path / 'a.wav'}\n")
    (data / "text").write_text("spk1-a hello world\n")
    (data / "utt2spk").write_text("spk1-a spk1\n")
    (data / "spk2utt").write_text("spk1 spk1-a\n")
    return data


def test_speed_perturbation_changes_length_and_pitch(tmp_path):
    data = make_dir(tmp_path)
    main(["--in_dir", str(data), "--out_dir", str(tmp_path / "sp"), "--wav_dir", str(tmp_path / "wav"),
          "--factors", "0.9", "1.0", "1.1"])
    utts = {u.utt_id: u for u in read_data_dir(tmp_path / "sp")}
    assert set(utts) == {"spk1-a", "sp0.9-spk1-a", "sp1.1-spk1-a"}
    assert utts["sp0.9-spk1-a"].spk == "sp0.9-spk1" and utts["sp1.1-spk1-a"].text == "hello world"
    for factor in (0.9, 1.1):
        x, fs = sf.read(utts[f"sp{factor:g}-spk1-a"].wav)
        assert fs == 16000 and abs(len(x) - 16000 / factor) <= 2
        spectrum = np.abs(np.fft.rfft(x))
        peak_hz = np.argmax(spectrum) * fs / len(x)
        assert peak_hz == pytest.approx(440 * factor, rel=0.01)


def test_bad_factor_is_refused(tmp_path, capsys):
    data = make_dir(tmp_path)
    assert main(["--in_dir", str(data), "--out_dir", str(tmp_path / "sp"), "--wav_dir", str(tmp_path / "w"),
                 "--factors", "3.0"]) == 1
    assert "ERROR: speed_perturb: --factors: speed factor 3.0 is outside" in capsys.readouterr().err


def test_parallel_jobs_write_what_one_job_writes(tmp_path):
    data = make_dir(tmp_path)
    sf.write(tmp_path / "b.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 16000, subtype="PCM_16")
    with (data / "wav.scp").open("a") as f:
        f.write(f"spk1-b {tmp_path / 'b.wav'}\n")
    (data / "text").write_text("spk1-a hello world\nspk1-b bye\n")
    (data / "utt2spk").write_text("spk1-a spk1\nspk1-b spk1\n")
    (data / "spk2utt").write_text("spk1 spk1-a spk1-b\n")
    for nj in (1, 3):
        assert main(["--in_dir", str(data), "--out_dir", str(tmp_path / f"sp{nj}"), "--wav_dir",
                     str(tmp_path / f"w{nj}"), "--factors", "0.9", "1.0", "1.1", "--nj", str(nj)]) == 0
    one, three = (read_data_dir(tmp_path / f"sp{nj}") for nj in (1, 3))
    assert [u.utt_id for u in one] == [u.utt_id for u in three] and len(one) == 6
    for a, b in zip(one, three):
        assert np.array_equal(sf.read(a.wav)[0], sf.read(b.wav)[0])


def test_bad_nj_and_unreadable_audio_are_refused_in_parallel_too(tmp_path, capsys):
    data = make_dir(tmp_path)
    assert main(["--in_dir", str(data), "--out_dir", str(tmp_path / "sp"), "--wav_dir", str(tmp_path / "w"),
                 "--factors", "0.9", "--nj", "0"]) == 1
    assert "--nj must be a positive integer, got 0" in capsys.readouterr().err
    (tmp_path / "a.wav").write_bytes(b"not audio")
    assert main(["--in_dir", str(data), "--out_dir", str(tmp_path / "sp"), "--wav_dir", str(tmp_path / "w"),
                 "--factors", "0.9", "1.1", "--nj", "2"]) == 1
    assert re.search(r"wav.scp: cannot read .*a\.wav of utterance spk1-a", capsys.readouterr().err)


def test_segmented_dir_is_perturbed_per_recording_with_scaled_times(tmp_path):
    from espnet_dld.data.kaldi_dir import Segment, Utterance, write_data_dir

    rec = tmp_path / "talk.wav"
    sf.write(str(rec), (np.random.RandomState(0).randn(16000 * 2) * 3000).astype(np.int16), 16000, subtype="PCM_16")
    write_data_dir([Utterance("talk-1", str(rec), "a b", "talk", Segment("talk", 0.2, 0.9)),
                    Utterance("talk-2", str(rec), "c", "talk", Segment("talk", 1.1, -1))], tmp_path / "in")
    assert main(["--in_dir", str(tmp_path / "in"), "--out_dir", str(tmp_path / "out"),
                 "--wav_dir", str(tmp_path / "sp"), "--factors", "0.9", "1.0", "1.1"]) == 0
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == ["sp0.9-talk.wav", "sp1.1-talk.wav"]
    segs = (tmp_path / "out/segments").read_text().splitlines()
    assert segs == ["sp0.9-talk-1 sp0.9-talk 0.222 1", "sp0.9-talk-2 sp0.9-talk 1.222 -1",
                    "sp1.1-talk-1 sp1.1-talk 0.182 0.818", "sp1.1-talk-2 sp1.1-talk 1 -1",
                    "talk-1 talk 0.2 0.9", "talk-2 talk 1.1 -1"]
    utts = {u.utt_id: u for u in read_data_dir(tmp_path / "out")}
    assert utts["sp1.1-talk-1"].wav == str((tmp_path / "sp/sp1.1-talk.wav").resolve())
    assert utts["sp1.1-talk-1"].spk == "sp1.1-talk" and utts["talk-2"].wav == str(rec)
