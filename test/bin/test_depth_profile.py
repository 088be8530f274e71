"""espnet_dld.bin.depth_profile on the tiny DLD student, and how decoding,
packing and export use the profile it writes."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from espnet_dld import Speech2Text
from espnet_dld.utils.checkpoint import file_sha256
from espnet_dld.asr.encoder.depth_search import is_nested
from espnet_dld.asr.encoder.layer_gating import first_layers, uniform_layers
from espnet_dld.bin.depth_profile import main

DECODE = dict(ctc_greedy=True, device="cpu")
# differs from uniform ([3], [1, 3], [0, 2, 3]) at every depth below 4
HAND = {4: [0, 1, 2, 3], 3: [0, 1, 2], 2: [0, 2], 1: [0]}


def copy_exp(tiny_exp, folder: Path) -> Path:
    """The DLD student's config and weights in a folder of their own (a
    profile written beside them must not reach the other tests)."""
    folder.mkdir(parents=True)
    for name in ("config.yaml", "1epoch.pth"):
        shutil.copyfile(tiny_exp.exps["dld"] / name, folder / name)
    return folder / "1epoch.pth"


def data_args(tiny_exp, text: Path = None):
    return ["--data_path_and_name_and_type", f"{tiny_exp.data}/wav.scp,speech,sound",
            "--data_path_and_name_and_type", f"{text or tiny_exp.data / 'text'},text,text"]


def hand_profile(pth: Path, path: Path = None, **changes) -> Path:
    path = path or pth.parent / "depth_profile.yaml"
    record = {"num_blocks": 4, "model_file": pth.name, "model_sha256": file_sha256(pth), "profile": HAND, **changes}
    path.write_text(yaml.safe_dump(record))
    return path


def wave(tiny_exp, i=0):
    return sf.read((tiny_exp.data / "wav.scp").read_text().splitlines()[i].split()[1])[0]


@pytest.fixture(scope="module")
def measured(tiny_exp, tmp_path_factory):
    """The profile measured by the CLI (default output path), and a second run."""
    pth = copy_exp(tiny_exp, tmp_path_factory.mktemp("measured") / "dld")
    again = pth.parent.parent / "again.yaml"
    assert main(["--asr_model_file", str(pth)] + data_args(tiny_exp)) == 0
    assert main(["--asr_model_file", str(pth), "--out", str(again)] + data_args(tiny_exp)) == 0
    return pth, pth.parent / "depth_profile.yaml", again


def test_cli_writes_nested_subsets_of_every_size_reproducibly(measured, tiny_exp):
    pth, path, again = measured
    assert path.read_bytes() == again.read_bytes()
    record = yaml.safe_load(path.read_text())
    profile = record["profile"]
    assert record["num_blocks"] == 4 and record["criterion"] == "ctc_loss" and record["num_utterances"] == 8
    assert record["model_file"] == "1epoch.pth" and record["model_sha256"] == file_sha256(pth)
    assert record["data"] == {"speech": f"{tiny_exp.data}/wav.scp", "text": str(tiny_exp.data / "text")}
    assert list(profile) == [4, 3, 2, 1] and all(len(profile[k]) == k for k in profile)
    assert profile[4] == [0, 1, 2, 3] and is_nested(profile)
    for step in record["steps"]:
        k, removed, candidates = step["depth"], step["removed"], step["candidates"]
        assert sorted(candidates) == profile[k + 1]  # every remaining block was tried
        assert profile[k] == [b for b in profile[k + 1] if b != removed]
        assert candidates[removed] == min(candidates.values())
        assert removed == min(b for b, v in candidates.items() if v == candidates[removed])
    assert len({v for s in record["steps"] for v in s["candidates"].values()}) > 3  # subsets really differ
    assert not list(path.parent.glob(".*tmp*"))


def test_wer_criterion_breaks_ties_by_ctc_loss(measured, tiny_exp, tmp_path):
    pth, _, _ = measured
    out = tmp_path / "wer.yaml"
    assert main(["--asr_model_file", str(pth), "--criterion", "wer", "--out", str(out)] + data_args(tiny_exp)) == 0
    record = yaml.safe_load(out.read_text())
    assert record["criterion"] == "wer" and set(record["all_blocks"]) == {"wer", "ctc_loss"}
    assert is_nested(record["profile"]) and sorted(record["profile"]) == [1, 2, 3, 4]
    for step in record["steps"]:
        key = {b: (v["wer"], v["ctc_loss"]) for b, v in step["candidates"].items()}
        assert key[step["removed"]] == min(key.values())
        assert 0.0 <= key[step["removed"]][0]


def test_speech2text_uses_the_profile_beside_the_model_and_policies_override(measured):
    pth, path, _ = measured
    profile = yaml.safe_load(path.read_text())["profile"]
    s2t = Speech2Text(pth.parent / "config.yaml", pth, depth=1, **DECODE)
    assert s2t.depth_policy == "profile" and s2t.depth_profile_path == path
    assert s2t.active_layers == profile[1]
    assert [s2t.set_depth(k) for k in (1, 2, 3, 4)] == [profile[k] for k in (1, 2, 3, 4)]
    s2t.set_depth(2)
    assert s2t.set_depth_policy("first") == first_layers(4, 2)
    uniform = Speech2Text(pth.parent / "config.yaml", pth, depth=2, depth_policy="uniform", **DECODE)
    assert uniform.active_layers == uniform_layers(4, 2) and uniform.depth_policy == "uniform"


def test_packed_model_carries_its_profile_to_decoding_and_export(tiny_exp, tmp_path, monkeypatch):
    from espnet2.bin.pack import main as pack

    from espnet_dld.bin.export_depth import export_depth

    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # ESPnet packs paths relative to the working directory, as the recipe does
    pth = copy_exp(tiny_exp, tmp_path / "exp" / "dld")
    hand_profile(pth)
    pack(["asr", "--asr_train_config", "exp/dld/config.yaml", "--asr_model_file", "exp/dld/1epoch.pth",
          "--option", "exp/dld/depth_profile.yaml", "--option", str(tiny_exp.stats / "train" / "feats_stats.npz"),
          "--outpath", "model.zip"])
    speech = wave(tiny_exp, 1)
    packed = Speech2Text.from_pretrained("model.zip", depth=2, **DECODE)
    assert packed.depth_policy == "profile" and packed.active_layers == HAND[2]
    assert packed(speech)[0][0] == Speech2Text(pth.parent / "config.yaml", pth, layers=[0, 2], **DECODE)(speech)[0][0]
    assert Speech2Text.from_pretrained("model.zip", depth=2, depth_policy="uniform", **DECODE).active_layers == [1, 3]

    exported = export_depth(tmp_path / "d2.zip", depth=2, model="model.zip")
    assert exported["layers"] == HAND[2] and exported["depth_policy"] == "profile"
    with zipfile.ZipFile(tmp_path / "d2.zip") as z:
        assert not [n for n in z.namelist() if n.endswith("depth_profile.yaml")]  # it describes the dynamic model
    assert export_depth(tmp_path / "u2.zip", depth=2, model="model.zip", depth_policy="uniform")["layers"] == [1, 3]


def test_inference_cli_records_the_policy(tiny_exp, tmp_path):
    from espnet_dld.bin.asr_inference import main as decode

    pth = copy_exp(tiny_exp, tmp_path / "dld")
    hand_profile(pth)
    keys = tmp_path / "keys"
    keys.write_text((tiny_exp.data / "wav.scp").read_text().splitlines()[0] + "\n")
    common = ["--asr_train_config", str(pth.parent / "config.yaml"), "--asr_model_file", str(pth),
              "--data_path_and_name_and_type", f"{tiny_exp.data}/wav.scp,speech,sound", "--key_file", str(keys),
              "--ctc_greedy", "true", "--depth", "1", "2", "--ngpu", "0"]
    decode(common + ["--output_dir", str(tmp_path / "p")])
    decode(common + ["--output_dir", str(tmp_path / "u"), "--depth_policy", "uniform"])
    stats = {(run, k): json.loads((tmp_path / run / f"depth{k}" / "decode_stats.json").read_text())
             for run in "pu" for k in (1, 2)}
    assert [stats["p", k]["active_layers"] for k in (1, 2)] == [HAND[1], HAND[2]]
    assert stats["p", 2]["depth_policy"] == "profile"
    assert stats["p", 2]["depth_profile"] == str(pth.parent / "depth_profile.yaml")
    assert [stats["u", k]["active_layers"] for k in (1, 2)] == [[3], [1, 3]]
    assert stats["u", 1]["depth_policy"] == "uniform" and stats["u", 1]["depth_profile"] is None


def test_profile_policy_without_a_profile_says_how_to_make_one(tiny_exp):
    cfg, pth = tiny_exp.exps["dld"] / "config.yaml", tiny_exp.exps["dld"] / "1epoch.pth"
    with pytest.raises(ValueError) as e:
        Speech2Text(cfg, pth, depth=2, depth_policy="profile", **DECODE)
    assert "no depth profile is loaded" in str(e.value) and "espnet_dld.bin.depth_profile" in str(e.value)


def test_profiles_of_another_model_are_refused(tiny_exp, tmp_path):
    pth = copy_exp(tiny_exp, tmp_path / "dld")
    cfg = pth.parent / "config.yaml"
    other = hand_profile(pth, tmp_path / "other.yaml", model_sha256="0" * 64, model_file="valid.loss.ave.pth")
    with pytest.raises(ValueError) as e:
        Speech2Text(cfg, pth, depth_profile=other, **DECODE)
    assert str(other) in str(e.value) and str(pth) in str(e.value) and "another checkpoint" in str(e.value)
    six = hand_profile(pth, tmp_path / "six.yaml", num_blocks=6)
    with pytest.raises(ValueError, match="is for an encoder of 6 blocks, but the model has 4"):
        Speech2Text(cfg, pth, depth_profile=six, **DECODE)
    bad = hand_profile(pth, tmp_path / "bad.yaml", profile={**HAND, 2: [0, 9]})
    with pytest.raises(ValueError, match=r"bad.yaml: depth 2: layers \[0, 9\] contains \[9\]"):
        Speech2Text(cfg, pth, depth_profile=bad, **DECODE)
    hand_profile(pth, model_sha256="0" * 64)  # a stale file beside the model stops decoding too
    with pytest.raises(ValueError, match="another checkpoint"):
        Speech2Text(cfg, pth, **DECODE)
    assert Speech2Text(cfg, pth, depth_profile=hand_profile(pth, tmp_path / "ok.yaml"), depth=1,
                       **DECODE).active_layers == [0]  # an explicit file wins over the one beside the model


def test_cli_refusals_name_the_problem(tiny_exp, tmp_path, capsys):
    pth = copy_exp(tiny_exp, tmp_path / "dld")
    lines = (tiny_exp.data / "text").read_text().splitlines()
    partial = tmp_path / "text"
    partial.write_text("\n".join(lines[1:]) + "\n")
    assert main(["--asr_model_file", str(pth)] + data_args(tiny_exp, partial)) == 1
    err = capsys.readouterr().err
    assert f"the text file {partial} has no transcript for 1 of the 8 utterances" in err
    assert lines[0].split()[0] in err

    empty = tmp_path / "wav.scp"
    empty.write_text("")
    assert main(["--asr_model_file", str(pth), "--data_path_and_name_and_type", f"{empty},speech,sound",
                 "--text", str(tiny_exp.data / "text")]) == 1
    assert f"the dev set {empty} is empty" in capsys.readouterr().err

    assert main(["--asr_model_file", str(pth), "--text", str(tmp_path / "none")] + data_args(tiny_exp)[:2]) == 1
    err = capsys.readouterr().err
    assert f"the text file {tmp_path / 'none'} (--data_path_and_name_and_type) does not exist" in err
    assert main(["--asr_model_file", str(pth)] + data_args(tiny_exp)[:2]) == 1
    assert "give exactly one text file" in capsys.readouterr().err
    assert main(["--asr_model_file", str(tmp_path / "gone.pth")] + data_args(tiny_exp)) == 1
    assert "gone.pth does not exist" in capsys.readouterr().err

    teacher = tiny_exp.exps["teacher"] / "1epoch.pth"
    assert main(["--asr_model_file", str(teacher), "--out", str(tmp_path / "t.yaml")] + data_args(tiny_exp)) == 1
    assert "its encoder ConformerEncoder is static; a depth profile needs a dynamic (dld_*) encoder" in \
        capsys.readouterr().err
    assert not (pth.parent / "depth_profile.yaml").exists() and not (tmp_path / "t.yaml").exists()
