"""The teacher-posterior cache: dump, round trip, training from it, mismatch errors."""
import argparse
import logging
import re
import shutil

import kaldiio
import pytest
import soundfile as sf
import torch
import yaml

from espnet_dld.asr.teacher_cache import TOPK_IDX, TOPK_PROB, TeacherCacheError, data_options, read_meta
from espnet_dld.bin.dump_teacher_posteriors import dump
from espnet_dld.bin.dump_teacher_posteriors import main as dump_main
from espnet_dld.tasks.asr import ASRTask


def teacher_files(tiny_exp):
    return str(tiny_exp.exps["teacher"] / "config.yaml"), str(tiny_exp.exps["teacher"] / "1epoch.pth")


def vocab_size(tiny_exp):
    return len(tiny_exp.token_list.read_text().split())


def dump_set(tiny_exp, cache, topk, temperature=1.0, name="train", key_file=None, teacher_model=None):
    config, model = teacher_files(tiny_exp)
    return dump(config, teacher_model or model, f"{tiny_exp.data}/wav.scp,speech,sound", str(cache), name,
                topk=topk, temperature=temperature, key_file=key_file)


@pytest.fixture(scope="module")
def full_cache(tiny_exp, tmp_path_factory):
    """Every token kept: the cache is the teacher's distribution up to float16."""
    cache = tmp_path_factory.mktemp("cache") / "full"
    dump_set(tiny_exp, cache, vocab_size(tiny_exp))
    return cache


def cached_student_args(tiny_exp, cache, **model_conf):
    args = yaml.safe_load((tiny_exp.exps["dld"] / "config.yaml").read_text())
    args["model_conf"] = {**args["model_conf"], "teacher_cache": str(cache), **model_conf}
    for mode in ("train", "valid"):
        opts = data_options(cache, "train", mode)
        args[f"{mode}_data_path_and_name_and_type"] = list(args[f"{mode}_data_path_and_name_and_type"]) + [
            opts[i].split(",") for i in (1, 3)]
    return argparse.Namespace(**args)


def online_posteriors(tiny_exp, utt):
    """The teacher run alone on one utterance, as the dump does."""
    from espnet_dld.asr.teacher import load_teacher

    teacher = load_teacher(*teacher_files(tiny_exp))
    path = dict(line.split() for line in (tiny_exp.data / "wav.scp").read_text().splitlines())[utt]
    wave = torch.tensor(sf.read(path)[0], dtype=torch.float32)[None]
    with torch.no_grad():
        enc, lens = teacher.encode(wave, torch.tensor([wave.shape[1]]))
        return torch.softmax(teacher.ctc.ctc_lo(enc[0, : int(lens[0])]), -1)


def test_round_trip_matches_the_online_teacher_within_float16(tiny_exp, tmp_path):
    out = dump_set(tiny_exp, tmp_path / "c", topk=3)
    probs = dict(kaldiio.load_scp(str(out / "prob.scp")))
    idxs = dict(kaldiio.load_scp(str(out / "idx.scp")))
    utts = [line.split()[0] for line in (tiny_exp.data / "wav.scp").read_text().splitlines()]
    assert sorted(probs) == sorted(idxs) == sorted(utts)
    for utt in utts[:3]:
        prob, idx = probs[utt], idxs[utt]
        assert prob.shape == idx.shape and prob.shape[1] == 3
        online = online_posteriors(tiny_exp, utt)
        values, indices = online.topk(3, dim=-1)
        assert prob.shape[0] == online.shape[0]
        # 16-bit linear quantisation between the utterance's min and max probability
        torch.testing.assert_close(torch.from_numpy(prob).float(), values, atol=1e-5, rtol=0)
        assert torch.equal(torch.from_numpy(idx).double(), indices.double())  # indices exact
    stats = yaml.safe_load((out / "stats.yaml").read_text())
    assert stats["utterances"] == len(utts)
    # 2 bytes per stored value, plus a key and a 20-byte header per utterance and file
    assert stats["bytes"] <= 2 * 2 * 3 * stats["frames"] + 2 * len(utts) * (len(utts[0]) + 24)
    assert 0.0 <= stats["mean_residual_mass"] <= stats["max_residual_mass"] <= 1.0
    meta = read_meta(tmp_path / "c")
    assert meta["topk"] == 3 and meta["token_list"] == tiny_exp.token_list.read_text().split()


def test_kd_from_the_full_cache_equals_the_online_teacher(tiny_exp, full_cache):
    """Same student, same batch: the cached KL term equals the online one."""
    from espnet_dld.asr.dld_espnet_model import DLDESPnetASRModel

    online = ASRTask.build_model(argparse.Namespace(**yaml.safe_load((tiny_exp.exps["dld"] / "config.yaml").read_text())))
    cached = ASRTask.build_model(cached_student_args(tiny_exp, full_cache))
    assert isinstance(cached, DLDESPnetASRModel) and cached.teacher is None and cached.teacher_cache == str(full_cache)
    cached.load_state_dict(online.state_dict())
    utts = [line.split()[0] for line in (tiny_exp.data / "wav.scp").read_text().splitlines()][:1]
    speech, lens, text, text_lens = tiny_exp.batch(1)
    prob = torch.from_numpy(kaldiio.load_scp(str(full_cache / "train" / "prob.scp"))[utts[0]]).float()[None]
    idx = torch.from_numpy(kaldiio.load_scp(str(full_cache / "train" / "idx.scp"))[utts[0]]).float()[None]
    batch = {TOPK_PROB: prob, TOPK_PROB + "_lengths": torch.tensor([prob.shape[1]]),
             TOPK_IDX: idx, TOPK_IDX + "_lengths": torch.tensor([idx.shape[1]])}
    for model in (online, cached):
        model.eval()
        model.encoder.set_depth(2)  # a student unlike its teacher: KL > 0
    with torch.no_grad():
        _, s_online, _ = online(speech, lens, text, text_lens)
        _, s_cached, _ = cached(speech, lens, text, text_lens, **batch)
    assert s_online["loss_kd"].item() > 1e-3
    assert s_cached["loss_kd"].item() == pytest.approx(s_online["loss_kd"].item(), rel=5e-3)
    assert s_cached["loss_ctc"].item() == pytest.approx(s_online["loss_ctc"].item(), rel=1e-6)
    # frames that do not match the student are refused
    bad = dict(batch, **{TOPK_PROB + "_lengths": torch.tensor([prob.shape[1] - 1])})  # its longest utterance
    with pytest.raises(TeacherCacheError, match="does not match this batch.*other features"):
        cached(speech, lens, text, text_lens, **bad)
    with pytest.raises(TeacherCacheError, match="the batch has no teacher_topk_prob"):
        cached(speech, lens, text, text_lens)


def test_training_reads_the_cache_through_espnets_data_loader(tiny_exp, full_cache, tmp_path, caplog):
    from espnet_dld.bin.asr_train import main

    caplog.set_level(logging.INFO)
    out = tmp_path / "dld_cached"
    args = [a for a in tiny_exp.train_args("dld", out)]
    i = args.index(next(a for a in args if a.startswith("teacher_model=")))
    args[i] = f"teacher_cache={full_cache}"
    args += data_options(full_cache, "train", "train") + data_options(full_cache, "train", "valid")
    main(args)
    assert "teacher posteriors from the cache" in caplog.text
    assert re.search(r"1epoch results: \[train\].* loss_kd=[0-9.]+.*\[valid\].* loss_kd=[0-9.]+", caplog.text)
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert conf["model_conf"]["teacher_cache"] == str(full_cache)
    assert (out / "1epoch.pth").is_file()


def test_missing_utterance_is_named_before_training(tiny_exp, tmp_path):
    utts = [line.split()[0] for line in (tiny_exp.data / "wav.scp").read_text().splitlines()]
    keys = tmp_path / "keys"
    keys.write_text("".join(f"{u} x\n" for u in utts[:-1]))
    cache = tmp_path / "partial"
    dump_set(tiny_exp, cache, topk=3, key_file=str(keys))
    args = cached_student_args(tiny_exp, cache)
    with pytest.raises(TeacherCacheError, match=f"no entry for 1 utterance.*{utts[-1]}"):
        ASRTask.build_model(args)


def test_cache_of_another_token_list_temperature_or_teacher_is_refused(tiny_exp, full_cache, tmp_path):
    args = cached_student_args(tiny_exp, full_cache)
    args.token_list = list(args.token_list)
    args.token_list[2], args.token_list[3] = args.token_list[3], args.token_list[2]
    with pytest.raises(TeacherCacheError, match="another token list.*first difference at index 2"):
        ASRTask.build_model(args)
    with pytest.raises(TeacherCacheError, match="temperature 1.0, but model_conf.kd_temperature is 2.0"):
        ASRTask.build_model(cached_student_args(tiny_exp, full_cache, kd_temperature=2.0))
    # the teacher checkpoint changed after the dump
    changed = tmp_path / "teacher.pth"
    state = torch.load(teacher_files(tiny_exp)[1], map_location="cpu")
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, changed)
    with pytest.raises(TeacherCacheError, match="other contents"):
        ASRTask.build_model(cached_student_args(tiny_exp, full_cache, teacher_model=str(changed)))
    # the teacher it was dumped from is accepted
    model = ASRTask.build_model(cached_student_args(tiny_exp, full_cache, teacher_model=teacher_files(tiny_exp)[1]))
    assert model.teacher is None


def test_data_without_the_cache_inputs_or_with_augmentation_is_refused(tiny_exp, full_cache):
    args = cached_student_args(tiny_exp, full_cache)
    args.valid_data_path_and_name_and_type = args.valid_data_path_and_name_and_type[:2]
    with pytest.raises(TeacherCacheError, match="the valid data has no teacher_topk_prob, teacher_topk_idx: add "
                                                "--valid_data_path_and_name_and_type"):
        ASRTask.build_model(args)
    args = cached_student_args(tiny_exp, full_cache)
    args.rir_scp = "data/rirs.scp"
    with pytest.raises(TeacherCacheError, match="on-the-fly augmentation \\(rir_scp\\)"):
        ASRTask.build_model(args)


def test_second_dump_into_a_cache_of_other_settings_is_refused(tiny_exp, full_cache, tmp_path, capsys):
    cache = tmp_path / "c"
    shutil.copytree(full_cache, cache)
    with pytest.raises(TeacherCacheError, match="another temperature: 1.0 in .*meta.yaml, 2.0 now"):
        dump_set(tiny_exp, cache, topk=vocab_size(tiny_exp), temperature=2.0, name="dev")
    config, model = teacher_files(tiny_exp)
    rc = dump_main(["--teacher_config", config, "--teacher_model", model, "--data_path_and_name_and_type",
                    f"{tiny_exp.data}/missing.scp,speech,sound", "--cache_dir", str(cache), "--name", "dev"])
    assert rc == 1 and "missing.scp does not exist" in capsys.readouterr().err
    # a complete set is kept, not redone
    before = (cache / "train" / "prob.ark").stat().st_mtime_ns
    dump_set(tiny_exp, cache, topk=vocab_size(tiny_exp))
    assert (cache / "train" / "prob.ark").stat().st_mtime_ns == before
