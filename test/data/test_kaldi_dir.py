"""Kaldi data directory writer/validator and the atomic writers."""
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_dld.data.atomic import atomic_path, write_audio_atomic, write_text_atomic
from espnet_dld.data.kaldi_dir import (
    Segment,
    Utterance,
    main,
    read_data_dir,
    validate_data_dir,
    write_data_dir,
)


def _wav(tmp_path: Path, name: str) -> str:
    path = tmp_path / "wav" / f"{name}.wav"
    write_audio_atomic(path, np.zeros(160, dtype=np.int16), 16000)
    return str(path)


@pytest.fixture
def utts(tmp_path):
    # deliberately unsorted input
    return [
        Utterance("spk2-0001", _wav(tmp_path, "b1"), "hello  world ", "spk2"),
        Utterance("spk1-0002", _wav(tmp_path, "a2"), "good\tmorning", "spk1"),
        Utterance("spk1-0001", _wav(tmp_path, "a1"), "one", "spk1"),
        Utterance("spk10-0001", _wav(tmp_path, "c1"), "ten", "spk10"),
    ]


def _lines(path: Path):
    return path.read_text(encoding="utf-8").splitlines()


def test_write_sorted_files(tmp_path, utts):
    d = write_data_dir(utts, tmp_path / "data")
    assert _lines(d / "utt2spk") == [
        "spk1-0001 spk1",
        "spk1-0002 spk1",
        "spk10-0001 spk10",
        "spk2-0001 spk2",
    ]
    assert _lines(d / "text")[1] == "spk1-0002 good morning"
    assert _lines(d / "text")[3] == "spk2-0001 hello world"
    assert [line.split()[0] for line in _lines(d / "wav.scp")] == [
        line.split()[0] for line in _lines(d / "utt2spk")
    ]
    assert _lines(d / "spk2utt") == [
        "spk1 spk1-0001 spk1-0002",
        "spk10 spk10-0001",
        "spk2 spk2-0001",
    ]
    assert validate_data_dir(d) == 4
    assert sorted(read_data_dir(d), key=lambda u: u.utt_id)[0].text == "one"


def test_rewrite_is_noop(tmp_path, utts):
    d = write_data_dir(utts, tmp_path / "data")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}
    write_data_dir(list(reversed(utts)), d)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}
    assert before == after
    assert sorted(after) == ["spk2utt", "text", "utt2spk", "wav.scp"]  # no temp files


@pytest.mark.parametrize(
    "bad, message",
    [
        (Utterance("x-1", "a.wav", "t", "spk1"), "must start with its speaker id"),
        (Utterance("spk1-0001", "a.wav", "t", "spk1"), "duplicate"),
        (Utterance("spk1-9", "a.wav", "   ", "spk1"), "empty transcript"),
        (Utterance("spk1 9", "a.wav", "t", "spk1"), "whitespace"),
        (Utterance("spk1-9", "a\nb.wav", "t", "spk1"), "bad wav entry"),
    ],
)
def test_write_rejects(tmp_path, utts, bad, message):
    with pytest.raises(ValueError, match=message):
        write_data_dir(utts + [bad], tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_write_rejects_speaker_order(tmp_path):
    # utterance order: "a-x-1" < "a_z" but speaker order: "a" < "a-x"
    utts = [Utterance("a_z", "1.wav", "t", "a"), Utterance("a-x-1", "2.wav", "t", "a-x")]
    with pytest.raises(ValueError, match="out of order"):
        write_data_dir(utts, tmp_path / "data")


@pytest.fixture
def good_dir(tmp_path, utts):
    return write_data_dir(utts, tmp_path / "data")


def _edit(path: Path, fn):
    path.write_text("".join(line + "\n" for line in fn(_lines(path))), encoding="utf-8")


@pytest.mark.parametrize(
    "name, fn, where",
    [
        ("wav.scp", lambda ls: [ls[1], ls[0]] + ls[2:], "wav.scp:2"),
        ("wav.scp", lambda ls: ls + [ls[-1]], "wav.scp:5"),
        ("text", lambda ls: ls[:2] + ["spk10-0001"] + ls[3:], "text:3"),
        ("text", lambda ls: ls[:-1], "wav.scp:4"),
        ("utt2spk", lambda ls: ls[:1] + ls[2:], "wav.scp:2"),
        ("utt2spk", lambda ls: ls + ["zzz-1 zzz"], "utt2spk:5"),
        ("spk2utt", lambda ls: ["spk1 spk1-0001"] + ls[1:], "spk2utt:1"),
        ("spk2utt", lambda ls: ls[:-1], "spk2utt"),
        ("utt2spk", lambda ls: ["spk1-0001 spk2"] + ls[1:], "utt2spk:1"),
    ],
)
def test_validate_names_file_and_line(good_dir, name, fn, where):
    _edit(good_dir / name, fn)
    with pytest.raises(ValueError) as e:
        validate_data_dir(good_dir)
    assert where in str(e.value)


def test_validate_missing_file_and_wav(good_dir):
    wav = Path(_lines(good_dir / "wav.scp")[2].split(maxsplit=1)[1])
    wav.unlink()
    with pytest.raises(ValueError, match=r"wav.scp:3: audio file .* not found"):
        validate_data_dir(good_dir)
    assert validate_data_dir(good_dir, check_wavs=False) == 4
    (good_dir / "spk2utt").unlink()
    with pytest.raises(ValueError, match="spk2utt: missing"):
        validate_data_dir(good_dir)


def test_cli(good_dir, capsys):
    assert main(["validate", str(good_dir)]) == 0
    assert "OK (4 utterances, 3 speakers)" in capsys.readouterr().out
    (good_dir / "text").write_text("spk1-0001 one\n", encoding="utf-8")
    assert main(["validate", str(good_dir)]) == 1
    assert str(good_dir / "wav.scp") in capsys.readouterr().err


def test_atomic_write_interrupted_keeps_old_content(tmp_path):
    path = tmp_path / "f.txt"
    assert write_text_atomic(path, "old\n") is True
    assert write_text_atomic(path, "old\n") is False
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_audio(tmp_path):
    x = (np.arange(800) % 100 * 50).astype(np.int16)
    write_audio_atomic(tmp_path / "a.wav", x, 16000)
    y, sr = soundfile.read(tmp_path / "a.wav", dtype="int16")
    assert sr == 16000 and np.array_equal(x, y)
    with pytest.raises(TypeError, match="int16"):
        write_audio_atomic(tmp_path / "b.wav", x.astype(np.float32), 16000)
    assert not (tmp_path / "b.wav").exists()


def test_combine_merges_disjoint_dirs_and_refuses_overlap(tmp_path):
    from espnet_dld.data.kaldi_dir import Utterance, combine_data_dirs, main, read_data_dir, write_data_dir

    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    write_data_dir([Utterance("s1-u1", str(wav), "one", "s1")], tmp_path / "a")
    write_data_dir([Utterance("s2-u1", str(wav), "two", "s2"), Utterance("s2-u2", str(wav), "three", "s2")],
                   tmp_path / "b")
    assert main(["combine", str(tmp_path / "ab"), str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert [u.utt_id for u in read_data_dir(tmp_path / "ab")] == ["s1-u1", "s2-u1", "s2-u2"]
    with pytest.raises(ValueError, match="'s1-u1' is in both"):
        combine_data_dirs(tmp_path / "aa", [tmp_path / "a", tmp_path / "a"])


def test_segments_round_trip_and_name_the_bad_line(tmp_path):
    talk = _wav(tmp_path, "talk")
    utts = [Utterance("t1-0002", talk, "b", "t1", Segment("t1", 1.5, -1)),
            Utterance("t1-0001", talk, "a", "t1", Segment("t1", 0.25, 1.0 / 3))]
    d = write_data_dir(utts, tmp_path / "data")
    assert _lines(d / "wav.scp") == [f"t1 {talk}"]  # keyed by recording
    assert _lines(d / "segments") == ["t1-0001 t1 0.25 0.333", "t1-0002 t1 1.5 -1"]
    assert validate_data_dir(d) == 2
    back = read_data_dir(d)
    assert [(u.utt_id, u.wav, u.segment) for u in back] == [
        ("t1-0001", talk, Segment("t1", 0.25, 0.333)), ("t1-0002", talk, Segment("t1", 1.5, -1.0))]
    # rewriting without segments leaves no stale segments file behind
    write_data_dir([Utterance("t1-0001", talk, "a", "t1")], d)
    assert not (d / "segments").exists() and validate_data_dir(d) == 1

    d = write_data_dir(utts, tmp_path / "bad")
    (d / "segments").write_text("t1-0001 t1 0.25 x\nt1-0002 t1 1.5 -1\n")
    with pytest.raises(ValueError, match=r"segments:1: expected '<utt> <recording> <start> <end>'"):
        validate_data_dir(d)
    (d / "segments").write_text("t1-0001 t1 0.25 1\nt1-0002 t9 1.5 -1\n")
    with pytest.raises(ValueError, match=r"segments:2: recording 't9' of 't1-0002' not in wav.scp"):
        validate_data_dir(d)
    (d / "segments").write_text("t1-0001 t1 0.25 1\n")
    with pytest.raises(ValueError, match=r"text:2: utterance 't1-0002' not in segments"):
        validate_data_dir(d)


def test_segments_are_all_or_none_and_one_audio_per_recording(tmp_path):
    a, b = _wav(tmp_path, "a"), _wav(tmp_path, "b")
    with pytest.raises(ValueError, match="'t1-0002': no segment, but others have one"):
        write_data_dir([Utterance("t1-0001", a, "x", "t1", Segment("t1", 0, 1)), Utterance("t1-0002", a, "y", "t1")],
                       tmp_path / "d")
    with pytest.raises(ValueError, match="recording 't1' has two audio entries"):
        write_data_dir([Utterance("t1-0001", a, "x", "t1", Segment("t1", 0, 1)),
                        Utterance("t1-0002", b, "y", "t1", Segment("t1", 1, 2))], tmp_path / "d")
