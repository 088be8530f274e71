"""The search on a fake criterion, and depth profile files: reading, checking, applying."""
import pytest
import yaml

from espnet_dld.asr.encoder.depth_profile_file import (
    apply_depth_profile,
    dump_depth_profile,
    load_depth_profile,
    read_depth_profile,
)
from espnet_dld.asr.encoder.depth_search import best_candidate, greedy_backward_elimination, is_nested
from espnet_dld.utils.checkpoint import file_sha256

# how much the criterion rises without each block; blocks 1 and 3 tie
COST = [5.0, 1.0, 3.0, 1.0, 9.0]


def fake_criterion(calls):
    def evaluate(layers):
        calls.append(list(layers))
        return sum(c for b, c in enumerate(COST) if b not in layers)
    return evaluate


def test_elimination_removes_the_cheapest_block_first_with_ties_to_the_lowest_index():
    calls = []
    profile, steps = greedy_backward_elimination(5, fake_criterion(calls))
    assert [s["removed"] for s in steps] == [1, 3, 2, 0]
    assert profile == {5: [0, 1, 2, 3, 4], 4: [0, 2, 3, 4], 3: [0, 2, 4], 2: [0, 4], 1: [4]}
    assert sorted(profile) == [1, 2, 3, 4, 5] and all(len(profile[k]) == k for k in profile)
    assert is_nested(profile)
    assert steps[0]["depth"] == 4 and steps[0]["candidates"] == {0: 5.0, 1: 1.0, 2: 3.0, 3: 1.0, 4: 9.0}
    assert steps[1]["candidates"] == {0: 6.0, 2: 4.0, 3: 2.0, 4: 10.0}
    assert len(calls) == 4 + 3 + 2 + 5 and all(c == sorted(c) for c in calls)  # N(N+1)/2 - 1 subsets


def test_tuple_scores_break_ties_by_the_second_value():
    # (wer, ctc_loss): equal WER without block 0 or 1, lower loss without 1
    score = {0: (10.0, 3.0), 1: (10.0, 2.5), 2: (12.0, 1.0)}
    assert best_candidate(score) == 1
    assert best_candidate({2: 1.0, 0: 1.0, 1: 1.0}) == 0
    profile, steps = greedy_backward_elimination(1, lambda layers: pytest.fail("nothing to try"))
    assert profile == {1: [0]} and steps == []
    with pytest.raises(ValueError, match="positive integer"):
        greedy_backward_elimination(0, lambda layers: 0.0)


def test_is_nested():
    assert not is_nested({2: [0, 1], 1: [2]})


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"weights")
    return path


def write(path, record):
    path.write_text(yaml.safe_dump(record))
    return path


PROFILE = {3: [0, 1, 2], 2: [0, 2], 1: [1]}


def test_written_profile_reads_back_and_the_checksum_must_match(tmp_path, model_file):
    path = tmp_path / "depth_profile.yaml"
    record = {"num_blocks": 3, "criterion": "ctc_loss", "model_file": "model.pth",
              "model_sha256": file_sha256(model_file), "profile": PROFILE}
    dump_depth_profile(path, record)
    assert "2: [0, 2]" in path.read_text()  # block lists on one line
    assert not list(tmp_path.glob(".*tmp*"))
    assert load_depth_profile(path, 3, model_file) == PROFILE
    assert read_depth_profile(path)["criterion"] == "ctc_loss"
    other = tmp_path / "other.pth"
    other.write_bytes(b"other weights")
    with pytest.raises(ValueError) as e:
        load_depth_profile(path, 3, other)
    assert str(path) in str(e.value) and str(other) in str(e.value) and "another checkpoint" in str(e.value)


@pytest.mark.parametrize(
    "record, fragment",
    [
        ({"num_blocks": 4, "profile": PROFILE}, "is for an encoder of 4 blocks, but the model has 3"),
        ({"num_blocks": 3, "profile": {**PROFILE, 2: [0, 1, 2]}}, "depth 2 lists 3 blocks"),
        ({"num_blocks": 3, "profile": {**PROFILE, 1: [3]}}, "depth 1: layers [3] contains [3]"),
        ({"num_blocks": 3, "profile": {3: [0, 1, 2], 1: [0]}}, "missing [2]"),
        ({"profile": PROFILE}, "must be a mapping with 'num_blocks' and 'profile'"),
        ({"num_blocks": "3", "profile": PROFILE}, "num_blocks must be a positive integer"),
    ],
)
def test_bad_profile_files_are_refused_naming_the_file(tmp_path, record, fragment):
    path = write(tmp_path / "bad.yaml", record)
    with pytest.raises(ValueError) as e:
        load_depth_profile(path, 3)
    assert fragment in str(e.value) and str(path) in str(e.value)


def test_unreadable_or_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: [unclosed")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_depth_profile(bad, 3)
    with pytest.raises(FileNotFoundError, match="espnet_dld.bin.depth_profile"):
        load_depth_profile(tmp_path / "none.yaml", 3)


def encoder(policy="uniform"):
    from espnet_dld.asr.encoder.dld_transformer_encoder import DLDTransformerEncoder

    return DLDTransformerEncoder(8, output_size=8, attention_heads=2, linear_units=8, num_blocks=3,
                                 depth_policy=policy)


def test_a_carried_profile_makes_the_policy_profile_unless_overridden(tmp_path, model_file):
    write(tmp_path / "depth_profile.yaml", {"num_blocks": 3, "model_sha256": file_sha256(model_file), "profile": PROFILE})
    enc = encoder()
    assert apply_depth_profile(enc, model_file) == ("profile", tmp_path / "depth_profile.yaml")
    assert enc.set_depth(1) == [1]
    enc = encoder()
    assert apply_depth_profile(enc, model_file, depth_policy="first")[0] == "first"
    assert enc.depth_profile == PROFILE and enc.set_depth(2) == [0, 1]
    # no file beside the model: the config's policy stays
    lone = tmp_path / "lone" / "model.pth"
    lone.parent.mkdir()
    lone.write_bytes(b"weights")
    enc = encoder(policy="first")
    assert apply_depth_profile(enc, lone) == ("first", None)
    with pytest.raises(FileNotFoundError, match="nowhere.yaml does not exist"):
        apply_depth_profile(encoder(), lone, depth_profile=tmp_path / "nowhere.yaml")
    with pytest.raises(ValueError, match="is static"):
        apply_depth_profile(object(), lone, depth_policy="uniform")
    assert apply_depth_profile(object(), model_file) == (None, None)  # a static model ignores a file beside it
