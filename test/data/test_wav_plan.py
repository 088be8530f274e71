"""Resumable generation from a plan: reuse, regeneration, interruption."""
import pytest

from espnet_dld.data.atomic import write_text_atomic
from espnet_dld.data.wav_plan import MANIFEST_NAME, PlannedWav, realize_plan


def _plan(folder, specs):
    return [PlannedWav(u, folder / f"{u}.wav", s) for u, s in specs.items()]


class Maker:
    def __init__(self, fail_after=None):
        self.calls = []
        self.fail_after = fail_after

    def __call__(self, item):
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(item.utt_id)
        write_text_atomic(item.path, item.spec)


def test_generate_then_reuse(tmp_path):
    specs = {"a-1": "x", "a-2": "y", "b-1": "z"}
    make = Maker()
    res = realize_plan(_plan(tmp_path, specs), tmp_path, make)
    assert (res.generated, res.reused) == (3, 0)
    manifest = (tmp_path / MANIFEST_NAME).read_text()
    assert manifest == "a-1.wav\tx\na-2.wav\ty\nb-1.wav\tz\n"
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    make = Maker()
    res = realize_plan(_plan(tmp_path, specs), tmp_path, make)
    assert (res.generated, res.reused, make.calls) == (0, 3, [])
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes


def test_changed_spec_and_stale_files(tmp_path):
    realize_plan(_plan(tmp_path, {"a-1": "x", "a-2": "y", "b-1": "z"}), tmp_path, Maker())
    (tmp_path / "unrelated.txt").write_text("keep me")
    make = Maker()
    res = realize_plan(_plan(tmp_path, {"a-1": "x", "a-2": "CHANGED"}), tmp_path, make)
    assert make.calls == ["a-2"]
    assert (res.generated, res.reused, res.removed) == (1, 1, 2)
    assert (tmp_path / "a-2.wav").read_text() == "CHANGED"
    assert not (tmp_path / "b-1.wav").exists()  # no longer planned
    assert (tmp_path / "unrelated.txt").read_text() == "keep me"


def test_file_without_manifest_is_not_trusted(tmp_path):
    (tmp_path / "a-1.wav").write_text("from somewhere else")
    realize_plan(_plan(tmp_path, {"a-1": "x"}), tmp_path, Maker())
    assert (tmp_path / "a-1.wav").read_text() == "x"


def test_interrupted_run_resumes(tmp_path):
    specs = {f"s-{i}": f"spec{i}" for i in range(5)}
    with pytest.raises(KeyboardInterrupt):
        realize_plan(_plan(tmp_path, specs), tmp_path, Maker(fail_after=2))
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["s-0.wav", "s-1.wav"]
    make = Maker()
    res = realize_plan(_plan(tmp_path, specs), tmp_path, make)
    assert make.calls == ["s-2", "s-3", "s-4"] and res.reused == 2
    assert all((tmp_path / f"{u}.wav").read_text() == s for u, s in specs.items())


def test_rejects_paths_outside_and_bad_specs(tmp_path):
    outside = [PlannedWav("a", tmp_path.parent / "a.wav", "x")]
    with pytest.raises(ValueError, match="outside"):
        realize_plan(outside, tmp_path / "sub", Maker())
    with pytest.raises(ValueError, match="tab or newline"):
        realize_plan(_plan(tmp_path, {"a": "x\ty"}), tmp_path, Maker())
