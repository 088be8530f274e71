"""Pretrained WavLM weights: each supported format loads back exactly; every
other file, or one that does not fit the config, is refused by name."""
import json
import re

import pytest
import torch
from wavlm_fixtures import (TINY, expected_encoder_state, hf_config, microsoft_cfg, save_hugging_face,
                            save_microsoft, save_torchaudio, to_microsoft, torchaudio_wavlm)

from espnet_dld.asr.encoder.dld_wavlm_encoder import DEFAULT_CONV_LAYERS, MASK_EMBEDDING, DLDWavLMEncoder, WavLMEncoder
from espnet_dld.asr.encoder.wavlm_checkpoint import HUGGING_FACE, MICROSOFT, TORCHAUDIO, parse_conv_layers
from espnet_dld.asr.trained_model import rebuilding_trained_model
from espnet_dld.utils.checkpoint import CheckpointError
from espnet_dld.utils.checkpoint import load_safetensors_file

LARGE_LIKE = dict(TINY, extractor_mode="layer_norm", layer_norm_first=True, extractor_conv_bias=True)


def save(fmt, tmp_path, model, conf):
    if fmt == "torchaudio":
        return save_torchaudio(tmp_path / "wavlm_ta.pth", model)
    if fmt == "microsoft":
        return save_microsoft(tmp_path / "WavLM-Tiny.pt", model, conf)
    if fmt == "hf_bin":
        return save_hugging_face(tmp_path / "wavlm-hf", model, conf)
    if fmt == "hf_safetensors":
        return save_hugging_face(tmp_path / "wavlm-hf-st", model, conf, safetensors=True)
    if fmt == "hf_parametrized":  # newer transformers save weight norm as parametrizations
        folder = save_hugging_face(tmp_path / "wavlm-hf-new", model, conf)
        state = torch.load(folder / "pytorch_model.bin")
        new_names = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
        state = {re.sub(r"(weight_g|weight_v)$", lambda m: new_names[m.group(1)], k): v for k, v in state.items()}
        assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in state
        torch.save(state, folder / "pytorch_model.bin")
        return folder
    if fmt == "hf_ctc_file":  # WavLMForCTC weights file given directly, config.json beside it
        return save_hugging_face(tmp_path / "wavlm-hf-ctc", model, conf, for_ctc=True) / "pytorch_model.bin"
    raise ValueError(fmt)


FORMATS = {"torchaudio": TORCHAUDIO, "microsoft": MICROSOFT, "hf_bin": HUGGING_FACE,
           "hf_safetensors": HUGGING_FACE, "hf_parametrized": HUGGING_FACE, "hf_ctc_file": HUGGING_FACE}


@pytest.mark.parametrize("conf", [TINY, LARGE_LIKE], ids=["base_like", "large_like"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_loads_back_the_same_weights(fmt, conf, tmp_path):
    model = torchaudio_wavlm(conf)
    path = save(fmt, tmp_path, model, conf)
    encoder = DLDWavLMEncoder(1, **conf, pretrained_path=str(path))
    state = encoder.state_dict()
    expected = expected_encoder_state(model)
    assert set(state) - set(expected) == {"num_updates", MASK_EMBEDDING}
    for k, v in expected.items():
        assert torch.equal(state[k], v), k
    if fmt != "torchaudio":  # the pretrained mask embedding is kept for fine-tuning masks
        assert torch.equal(state[MASK_EMBEDDING], saved_mask_embedding(path))
    fresh = DLDWavLMEncoder(1, **conf).state_dict()  # the load really changed the weights
    assert not torch.equal(fresh["encoders.0.attention.attention.in_proj_weight"],
                           state["encoders.0.attention.attention.in_proj_weight"])
    assert encoder.load_pretrained(path).format == FORMATS[fmt]


def saved_mask_embedding(path):
    if path.is_dir():
        path = path / ("model.safetensors" if (path / "model.safetensors").exists() else "pytorch_model.bin")
    if path.suffix == ".safetensors":
        return load_safetensors_file(path)["masked_spec_embed"]
    state = torch.load(path)
    if "cfg" in state:
        return state["model"]["mask_emb"]
    return state.get("masked_spec_embed", state.get("wavlm.masked_spec_embed"))


def test_dropped_keys_are_foreign_heads_only(tmp_path):
    model = torchaudio_wavlm()
    ms = WavLMEncoder(1, **TINY).load_pretrained(save("microsoft", tmp_path, model, TINY))
    assert ms.dropped == []
    hf = WavLMEncoder(1, **TINY).load_pretrained(save("hf_ctc_file", tmp_path, model, TINY))
    assert sorted(hf.dropped) == ["lm_head.bias", "lm_head.weight"]


def test_microsoft_conv_layer_expression_is_parsed_without_eval():
    base_plus = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
    assert parse_conv_layers(base_plus, "cfg") == DEFAULT_CONV_LAYERS
    with pytest.raises(CheckpointError, match="cannot read conv_feature_layers"):
        parse_conv_layers("__import__('os').system('true')", "cfg")


def test_rebuilding_a_trained_model_does_not_read_the_pretrained_file(tmp_path):
    missing = tmp_path / "gone" / "WavLM-Base+.pt"
    with rebuilding_trained_model():
        encoder = WavLMEncoder(1, **TINY, pretrained_path=str(missing))
    assert encoder.pretrained_path == str(missing)
    with pytest.raises(CheckpointError, match=re.escape(str(missing)) + " does not exist.*docs/wavlm.md"):
        WavLMEncoder(1, **TINY, pretrained_path=str(missing))


# -- refusals --------------------------------------------------------------------
def test_file_in_no_known_format_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=f"cannot read model file {text}"):
        WavLMEncoder(1, **TINY, pretrained_path=str(text))
    foreign = tmp_path / "conformer.pth"
    torch.save({"encoder.encoders.0.norm_ff.weight": torch.ones(4)}, foreign)
    with pytest.raises(CheckpointError, match=f"{foreign} holds a state dict in none of the supported WavLM formats"):
        WavLMEncoder(1, **TINY, pretrained_path=str(foreign))
    other = tmp_path / "list.pt"
    torch.save([1, 2], other)
    with pytest.raises(CheckpointError, match=f"{other} is not a WavLM checkpoint.*got list"):
        WavLMEncoder(1, **TINY, pretrained_path=str(other))


def test_hugging_face_folder_of_another_model_or_without_weights_is_refused(tmp_path):
    folder = save("hf_bin", tmp_path, torchaudio_wavlm(), TINY)
    (folder / "config.json").write_text(json.dumps(dict(hf_config(), model_type="hubert")))
    with pytest.raises(CheckpointError, match=r"config.json has model_type='hubert': not a WavLM"):
        WavLMEncoder(1, **TINY, pretrained_path=str(folder))
    (folder / "config.json").write_text(json.dumps(hf_config()))
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError, match=f"{folder} holds neither model.safetensors nor pytorch_model.bin"):
        WavLMEncoder(1, **TINY, pretrained_path=str(folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        WavLMEncoder(1, **TINY, pretrained_path=str(empty))


@pytest.mark.parametrize("fmt", ["torchaudio", "hf_bin", "microsoft"])
def test_shapes_that_do_not_match_the_config_name_file_and_first_key(fmt, tmp_path):
    wider = dict(TINY, hidden_size=24)
    path = save(fmt, tmp_path, torchaudio_wavlm(wider), wider)
    # the formats with a config are refused on the stated hidden_size, the bare one on shapes
    pattern = (f"{path}.*first mismatching key feature_projection.projection.weight: file \\(24, 16\\), config \\(16, 16\\)"
               if fmt == "torchaudio" else f"{path}.*hidden_size=24, the encoder config hidden_size=16")
    with pytest.raises(CheckpointError, match=pattern):
        WavLMEncoder(1, **TINY, pretrained_path=str(path))


def test_shape_mismatch_without_a_config_in_the_file(tmp_path):
    wider = dict(TINY, linear_units=48)
    model = torchaudio_wavlm(wider)
    path = tmp_path / "bare_microsoft_model.pt"
    torch.save(to_microsoft(model.state_dict(), wider), path)  # Microsoft keys, no cfg
    with pytest.raises(CheckpointError,
                       match=f"{path} \\(Microsoft WavLM .pt\\).*first mismatching key "
                             r"encoders.0.feed_forward.intermediate_dense.weight: file \(48, 16\), config \(32, 16\)"):
        WavLMEncoder(1, **TINY, pretrained_path=str(path))


def test_more_layers_or_a_missing_key_are_refused_by_name(tmp_path):
    deeper = dict(TINY, num_blocks=5)
    path = save_torchaudio(tmp_path / "deeper.pth", torchaudio_wavlm(deeper))
    with pytest.raises(CheckpointError, match=f"{path}.*first mismatching key encoders.4.attention.* is not in the encoder"):
        WavLMEncoder(1, **TINY, pretrained_path=str(path))
    state = torchaudio_wavlm().state_dict()
    del state["encoder.transformer.layers.2.final_layer_norm.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="first mismatching key encoders.2.final_layer_norm.bias is missing"):
        WavLMEncoder(1, **TINY, pretrained_path=str(tmp_path / "partial.pth"))


def test_architecture_stated_by_the_file_must_match_the_config(tmp_path):
    model = torchaudio_wavlm()
    path = save("microsoft", tmp_path, model, TINY)
    with pytest.raises(CheckpointError, match=f"{path} \\(Microsoft WavLM .pt\\) has layer_norm_first=False, "
                                              "the encoder config layer_norm_first=True"):
        WavLMEncoder(1, **dict(TINY, layer_norm_first=True), pretrained_path=str(path))
    cfg = dict(microsoft_cfg(), gru_rel_pos=False)
    torch.save({"cfg": cfg, "model": to_microsoft(model.state_dict())}, tmp_path / "no_gru.pt")
    with pytest.raises(CheckpointError, match="cfg.gru_rel_pos is false"):
        WavLMEncoder(1, **TINY, pretrained_path=str(tmp_path / "no_gru.pt"))
    folder = save("hf_bin", tmp_path, model, TINY)
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    with pytest.raises(CheckpointError, match="normalize_waveform=True, the encoder config normalize_waveform=False"):
        WavLMEncoder(1, **TINY, pretrained_path=str(folder))


def test_truncated_safetensors_is_refused(tmp_path):
    folder = save("hf_safetensors", tmp_path, torchaudio_wavlm(), TINY)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"model.safetensors \(truncated or not a safetensors file\)"):
        WavLMEncoder(1, **TINY, pretrained_path=str(folder))
