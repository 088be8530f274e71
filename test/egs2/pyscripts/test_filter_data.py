"""filter_data: removal reasons and counts, copied/filtered files for raw and
fbank directories, the nothing-left error, the <unk> warning, and the CLI
run as ``python -m``."""
import subprocess
import sys
from pathlib import Path

import pytest

from filter_data import main
from recipe_copy import PYSCRIPTS

FS = 16000


def _write_kv(path: Path, rows: dict) -> None:
    path.write_text("".join(f"{k} {v}".rstrip() + "\n" for k, v in sorted(rows.items())))


def _raw_org(root: Path) -> Path:
    """Raw dump dir: 9 utterances, 4 to remove for 4 reasons, 2 for missing entries."""
    d = root / "org"
    d.mkdir(parents=True)
    samples = {
        "a-1": FS,  # 1 s
        "a-2": 4800,  # 0.3 s: exactly --min_seconds, kept
        "a-3": 4799,  # too short
        "b-1": 20 * FS,  # exactly --max_seconds, kept
        "b-2": 20 * FS + 1,  # too long
        "b-3": 2 * FS,  # empty text
        "c-1": FS,  # missing from utt2spk
        "c-2": FS,  # only speaker c utterance left -> c stays
        "d-1": 0,  # zero length
    }
    text = {u: f"WORDS {u.upper()}" for u in samples}
    text["b-3"] = ""
    text["e-1"] = "ONLY IN TEXT"  # missing from every other file
    _write_kv(d / "utt2num_samples", samples)
    _write_kv(d / "wav.scp", {u: f"/audio/{u}.wav" for u in samples})
    _write_kv(d / "text", text)
    _write_kv(d / "utt2spk", {u: u.split("-")[0] for u in samples if u != "c-1"})
    (d / "spk2utt").write_text("a a-1 a-2 a-3\nb b-1 b-2 b-3\nc c-2\nd d-1\n")
    (d / "spk2gender").write_text("a f\nb m\nc f\nd m\n")
    (d / "feats_type").write_text("raw\n")
    (d / "bad_utts.txt").write_text("x-1\t/x.wav\tfile not found\n")
    (d / ".done").write_text("")
    return d


KEPT = ["a-1", "a-2", "b-1", "c-2"]


def test_raw_filtering(tmp_path, capsys):
    org = _raw_org(tmp_path)
    out = tmp_path / "train"
    args = ["--in_dir", str(org), "--out_dir", str(out), "--min_seconds", "0.3", "--max_seconds", "20"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == (
        "filter_data: kept 4 of 10 (too short: 2, too long: 1, empty text: 1, "
        "missing from utt2num_samples: 1, missing from utt2spk: 1)"
    )
    removed = [ln.split("\t") for ln in (out / "removed_utts.txt").read_text().splitlines()]
    assert removed == [
        ["a-3", "too short"],
        ["b-2", "too long"],
        ["b-3", "empty text"],
        ["c-1", "missing from utt2spk"],
        ["d-1", "too short"],
        ["e-1", "missing from utt2num_samples"],
    ]
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples"):
        keys = [ln.split()[0] for ln in (out / name).read_text().splitlines()]
        assert keys == KEPT, name
    assert (out / "wav.scp").read_text().splitlines()[0] == "a-1 /audio/a-1.wav"
    assert (out / "spk2utt").read_text() == "a a-1 a-2\nb b-1\nc c-2\n"
    assert (out / "spk2gender").read_text() == "a f\nb m\nc f\n"
    assert (out / "feats_type").read_text() == "raw\n"
    # hidden files and the previous stage's report are not copied
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "utt2num_samples", "feats_type", "removed_utts.txt"]
    )
    # a re-run gives the same files and leaves them untouched
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert main(args) == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before


def test_fbank_filtering(tmp_path, capsys):
    d = tmp_path / "org"
    d.mkdir()
    frames = {"a-1": 29, "a-2": 30, "a-3": 500, "a-4": 2001}
    _write_kv(d / "utt2num_frames", frames)
    _write_kv(d / "feats.scp", {u: f"/abs/feats.ark:{7 + 100 * i}" for i, u in enumerate(frames)})
    _write_kv(d / "text", {u: "HI" for u in frames})
    _write_kv(d / "utt2spk", {u: "a" for u in frames})
    (d / "spk2utt").write_text("a a-1 a-2 a-3 a-4\n")
    (d / "feats_type").write_text("fbank\n")
    (d / "feats_dim").write_text("80\n")
    (d / "frame_shift").write_text("10\n")
    (d / "feats.ark").write_bytes(b"\x00binary")
    out = tmp_path / "train"
    assert main(["--in_dir", str(d), "--out_dir", str(out), "--min_seconds", "0.3", "--max_seconds", "20"]) == 0
    assert capsys.readouterr().out.strip() == "filter_data: kept 2 of 4 (too short: 1, too long: 1)"
    assert (out / "feats.scp").read_text() == "a-2 /abs/feats.ark:107\na-3 /abs/feats.ark:207\n"
    assert (out / "utt2num_frames").read_text() == "a-2 30\na-3 500\n"
    assert (out / "feats_dim").read_text() == "80\n"
    assert (out / "frame_shift").read_text() == "10\n"
    assert not (out / "feats.ark").exists()  # feats.scp keeps pointing at the input's ark

    # another frame shift (from the option) changes the durations
    out2 = tmp_path / "train2"
    args = ["--in_dir", str(d), "--out_dir", str(out2), "--min_seconds", "0.3", "--frame_shift", "20"]
    assert main(args) == 0
    assert (out2 / "utt2num_frames").read_text() == "a-1 29\na-2 30\na-3 500\n"


def test_nothing_left(tmp_path, capsys):
    org = _raw_org(tmp_path)
    out = tmp_path / "train"
    assert main(["--in_dir", str(org), "--out_dir", str(out), "--min_seconds", "100", "--max_seconds", "200"]) == 1
    err = capsys.readouterr().err
    assert "no utterance of" in err and "kept 0 of 10" in err and "--min_seconds 100" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: (d / "feats_type").unlink(), "feats_type: missing"),
        (lambda d: (d / "utt2num_samples").unlink(), "utt2num_samples: missing"),
        (lambda d: (d / "utt2num_samples").write_text("a-1 lots\n"), "non-integer length 'lots'"),
        (lambda d: (d / "utt2spk").write_text("b-1 b\na-1 a\n"), "not sorted"),
    ],
)
def test_input_errors(tmp_path, capsys, change, expected):
    org = _raw_org(tmp_path)
    change(org)
    assert main(["--in_dir", str(org), "--out_dir", str(tmp_path / "o")]) == 1
    assert expected in capsys.readouterr().err


def test_unk_warning(tmp_path, caplog):
    d = tmp_path / "org"
    d.mkdir()
    text = {"a-1": "AB BA", "a-2": "ABX", "a-3": "ÜB"}
    _write_kv(d / "text", text)
    _write_kv(d / "utt2num_samples", {u: FS for u in text})
    _write_kv(d / "wav.scp", {u: f"/w/{u}.wav" for u in text})
    _write_kv(d / "utt2spk", {u: "a" for u in text})
    (d / "feats_type").write_text("raw\n")
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\nA\nB\n<space>\n<sos/eos>\n")
    args = ["--in_dir", str(d), "--out_dir", str(tmp_path / "o"), "--token_list", str(tokens), "--token_type", "char"]
    assert main(args) == 0
    assert "2 of 3 transcripts contain tokens not in" in caplog.text
    assert "'X' (1)" in caplog.text and "'Ü' (1)" in caplog.text
    # nothing is removed for it
    assert len((tmp_path / "o" / "text").read_text().splitlines()) == 3


def test_bpe_needs_model(tmp_path, capsys):
    org = _raw_org(tmp_path)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\n<sos/eos>\n")
    out = tmp_path / "o"
    assert main(["--in_dir", str(org), "--out_dir", str(out), "--token_list", str(tokens)]) == 1
    assert "--token_type bpe needs --bpemodel" in capsys.readouterr().err
    assert not out.exists()


def test_runs_as_a_script(tmp_path):
    """The script runs as ``python pyscripts/filter_data.py`` and exits 0 / 1."""
    org = _raw_org(tmp_path)
    cmd = [sys.executable, str(PYSCRIPTS / "filter_data.py"), "--in_dir", str(org), "--min_seconds", "0.3"]
    ok = subprocess.run(cmd + ["--out_dir", str(tmp_path / "ok")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("filter_data: kept 4 of 10 (")
    bad = subprocess.run(
        cmd + ["--out_dir", str(tmp_path / "bad"), "--max_seconds", "0.2"], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "ERROR: filter_data:" in bad.stderr
