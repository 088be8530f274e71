"""Connected-digit corpus from FSDD: on a tiny fake tree, and on the real one."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from fsdd import (
    DIGIT_WORDS,
    Recording,
    main,
    make_fake_fsdd,
    plan_split,
    prepare_fsdd,
    recordings_dir,
    split_speakers,
)
from espnet_dld.data.kaldi_dir import read_data_dir, validate_data_dir


def _real_fsdd():
    env = os.environ.get("FSDD")
    if env:
        return Path(env)
    # CI: a fresh clone with shared/ beside it (../shared relative to the repo)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "fsdd"


REAL_FSDD = _real_fsdd()
needs_real_fsdd = pytest.mark.skipif(
    not (REAL_FSDD / "recordings").is_dir(),
    reason=f"FSDD not found at {REAL_FSDD} (set FSDD to the folder containing recordings/)",
)
FAKE = dict(dev_speakers=["bob"], test_speakers=["carol"])


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return make_fake_fsdd(tmp_path_factory.mktemp("fsdd"))


def _run(root, out, **kw):
    sizes = dict(train_utts=6, dev_utts=3, test_utts=3)
    sizes.update(kw)
    return prepare_fsdd(root, out / "wav", out / "data", **sizes)


def _files(folder: Path):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.wav")}


def test_prepare_fake(fake_root, tmp_path):
    dirs = _run(fake_root, tmp_path, **FAKE)
    assert sorted(dirs) == ["dev", "test", "train"]
    spk = {s: {u.spk for u in read_data_dir(d)} for s, d in dirs.items()}
    assert spk == {"train": {"alice"}, "dev": {"bob"}, "test": {"carol"}}
    for split, d in dirs.items():
        assert validate_data_dir(d) == (6 if split == "train" else 3)
        manifest = (tmp_path / "wav" / split / "plan.tsv").read_text()
        plan = dict(line.split("\t") for line in manifest.splitlines())
        for u in read_data_dir(d):
            spec = json.loads(plan[f"{u.utt_id}.wav"])
            # the transcript is the digits of the concatenated source files
            assert u.text.split() == [DIGIT_WORDS[int(f[0])] for f in spec["src"]]
            assert all(f.split("_")[1] == u.spk for f in spec["src"])
            assert 1 <= len(spec["src"]) <= 7
            x, sr = soundfile.read(u.wav, dtype="int16")
            assert sr == 16000 and x.ndim == 1
            src = sum(soundfile.info(str(fake_root / "recordings" / f)).frames for f in spec["src"])
            assert len(x) == 2 * (src + sum(spec["pauses"]))
            assert all(400 <= p <= 2000 for p in spec["pauses"])  # 50-250 ms at 8 kHz


def test_deterministic_and_idempotent(fake_root, tmp_path):
    a = _run(fake_root, tmp_path / "a", **FAKE)
    _run(fake_root, tmp_path / "b", **FAKE)
    assert _files(tmp_path / "a" / "wav") == _files(tmp_path / "b" / "wav")
    assert (a["train"] / "text").read_text() == (tmp_path / "b/data/train/text").read_text()

    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}
    _run(fake_root, tmp_path / "a", **FAKE)
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*") if p.is_file()}

    # another seed: every wav is remade, nothing stale is left
    _run(fake_root, tmp_path / "a", seed=1, train_utts=4, **FAKE)
    assert validate_data_dir(tmp_path / "a" / "data" / "train") == 4
    assert len(list((tmp_path / "a" / "wav" / "train").glob("*.wav"))) == 4
    assert _files(tmp_path / "a" / "wav") != _files(tmp_path / "b" / "wav")


def test_every_recording_used_and_random_sequences():
    recs = {
        s: [Recording(Path(f"{d}_{s}_{t}.wav"), d, s, t) for d in range(10) for t in range(5)]
        for s in ("p", "q")
    }
    planned = plan_split(recs, ["p", "q"], 40, np.random.default_rng(0))
    used = [r for _, _, rs, _ in planned for r in rs]
    assert {r.path for r in used} == {r.path for rs in recs.values() for r in rs}
    assert [utt for utt, _, _, _ in planned[:4]] == ["p-0000", "q-0000", "p-0001", "q-0001"]
    lengths = {len(rs) for _, _, rs, _ in planned}
    assert lengths <= set(range(1, 8)) and len(lengths) > 3
    # each speaker's recordings are all used once before any is used again
    for s in ("p", "q"):
        draws = [r.path for r in used if r.speaker == s]
        assert len(set(draws[:50])) == 50


def test_split_speakers_errors():
    spks = ["a", "b", "c"]
    assert split_speakers(spks, ["b"], ["c"]) == {"train": ["a"], "dev": ["b"], "test": ["c"]}
    with pytest.raises(ValueError, match="test speaker.*'zed'"):
        split_speakers(spks, ["b"], ["zed"])
    with pytest.raises(ValueError, match="both dev and test"):
        split_speakers(spks, ["b"], ["b"])
    with pytest.raises(ValueError, match="no train speakers"):
        split_speakers(spks, ["a", "b"], ["c"])


def test_missing_folder_says_what_to_do(tmp_path, capsys, monkeypatch):
    with pytest.raises(FileNotFoundError) as e:
        recordings_dir(tmp_path / "nope")
    assert "Set FSDD in db.sh" in str(e.value) and "recordings" in str(e.value)
    code = main(["--fsdd_root", str(tmp_path / "nope"), "--out_wav", "w", "--out_data", "d"])
    assert code == 1 and "Set FSDD in db.sh" in capsys.readouterr().err
    monkeypatch.delenv("FSDD", raising=False)
    assert main(["--out_wav", "w", "--out_data", "d"]) == 1
    assert "Set FSDD in db.sh" in capsys.readouterr().err


@needs_real_fsdd
def test_real_fsdd(tmp_path):
    out = tmp_path / "out"
    args = ["--fsdd_root", str(REAL_FSDD), "--out_wav", str(out / "wav"), "--out_data"]
    args += [str(out / "data"), "--train_utts", "8", "--dev_utts", "2", "--test_utts", "2"]
    assert main(args) == 0
    spk = {s: {u.spk for u in read_data_dir(out / "data" / s)} for s in ("train", "dev", "test")}
    assert spk["dev"] == {"george"} and spk["test"] == {"theo"}
    assert spk["train"] == {"jackson", "lucas", "nicolas", "yweweler"}
    for u in read_data_dir(out / "data" / "train"):
        assert set(u.text.split()) <= set(DIGIT_WORDS)
        info = soundfile.info(u.wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.duration > 0.3
