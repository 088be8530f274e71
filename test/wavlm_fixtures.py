"""Tiny random WavLM models written to disk in each format users bring:
torchaudio state dict, Hugging Face folder (``pytorch_model.bin`` or
``model.safetensors``), Microsoft's ``WavLM-*.pt``.  Key names are written
out here from the formats' documentation, independently of the reader in
``espnet_dld.asr.encoder.wavlm_checkpoint``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import torch
from safetensors.torch import save_file
from torchaudio.models import wavlm_model

# encoder_conf of a tiny WavLM (same option names as the encoder)
TINY = dict(
    hidden_size=16, num_blocks=4, attention_heads=2, linear_units=32,
    extractor_conv_layers=[[16, 10, 5], [16, 3, 2], [16, 2, 2]], extractor_conv_bias=False,
    pos_conv_kernel=8, pos_conv_groups=2, num_buckets=16, max_distance=20, layer_norm_first=False,
    extractor_mode="group_norm",
)


def torchaudio_wavlm(conf: Dict = TINY, seed: int = 0) -> torch.nn.Module:
    """torchaudio's WavLM with ``conf``'s architecture, random weights (eval, no dropout)."""
    torch.manual_seed(seed)
    model = wavlm_model(
        extractor_mode=conf["extractor_mode"], extractor_conv_layer_config=[tuple(c) for c in conf["extractor_conv_layers"]],
        extractor_conv_bias=conf["extractor_conv_bias"], encoder_embed_dim=conf["hidden_size"],
        encoder_projection_dropout=0.0, encoder_pos_conv_kernel=conf["pos_conv_kernel"],
        encoder_pos_conv_groups=conf["pos_conv_groups"], encoder_num_layers=conf["num_blocks"],
        encoder_num_heads=conf["attention_heads"], encoder_num_buckets=conf["num_buckets"],
        encoder_max_distance=conf["max_distance"], encoder_attention_dropout=0.0,
        encoder_ff_interm_features=conf["linear_units"], encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
        encoder_layer_norm_first=conf["layer_norm_first"], encoder_layer_drop=0.0, aux_num_out=None,
    )
    with torch.no_grad():  # make every parameter non-trivial (norms start at 1/0, gru const at 1)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _split_qkv(state, src: str, dst: str, names=("q_proj", "k_proj", "v_proj")):
    for kind in ("weight", "bias"):
        for name, part in zip(names, state.pop(f"{src}in_proj_{kind}").chunk(3)):
            state[f"{dst}{name}.{kind}"] = part


def to_hugging_face(ta_state: Dict[str, torch.Tensor], num_blocks: int) -> Dict[str, torch.Tensor]:
    """torchaudio names -> HF WavLMModel names (old-style weight_g/weight_v)."""
    out = {}
    for k, v in ta_state.items():
        k = k.replace("encoder.feature_projection.", "feature_projection.")
        k = k.replace("encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv_embed.conv.weight_g")
        k = k.replace("encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv_embed.conv.weight_v")
        k = k.replace("encoder.transformer.", "encoder.")
        k = k.replace(".attention.attention.out_proj.", ".attention.out_proj.")
        out[k] = v.clone()
    for i in range(num_blocks):
        _split_qkv(out, f"encoder.layers.{i}.attention.attention.", f"encoder.layers.{i}.attention.")
    out["masked_spec_embed"] = torch.rand(out["feature_projection.projection.weight"].shape[0])
    return out


def hf_config(conf: Dict = TINY) -> Dict:
    layers = conf["extractor_conv_layers"]
    return {
        "model_type": "wavlm", "architectures": ["WavLMModel"], "hidden_size": conf["hidden_size"],
        "num_hidden_layers": conf["num_blocks"], "num_attention_heads": conf["attention_heads"],
        "intermediate_size": conf["linear_units"], "feat_extract_norm": conf["extractor_mode"].split("_")[0],
        "conv_dim": [l[0] for l in layers], "conv_kernel": [l[1] for l in layers], "conv_stride": [l[2] for l in layers],
        "conv_bias": conf["extractor_conv_bias"], "num_conv_pos_embeddings": conf["pos_conv_kernel"],
        "num_conv_pos_embedding_groups": conf["pos_conv_groups"], "do_stable_layer_norm": conf["layer_norm_first"],
        "num_buckets": conf["num_buckets"], "max_bucket_distance": conf["max_distance"], "layerdrop": 0.1,
    }


def write_safetensors(path: Path, state: Dict[str, torch.Tensor]) -> None:
    save_file({k: t.contiguous() for k, t in state.items()}, str(path))


def save_hugging_face(folder: Path, model: torch.nn.Module, conf: Dict = TINY, safetensors: bool = False,
                      for_ctc: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    state = to_hugging_face(model.state_dict(), conf["num_blocks"])
    cfg = hf_config(conf)
    if for_ctc:  # WavLMForCTC: "wavlm." prefix and a CTC head of another vocabulary
        state = {f"wavlm.{k}": v for k, v in state.items()}
        state["lm_head.weight"], state["lm_head.bias"] = torch.randn(32, conf["hidden_size"]), torch.randn(32)
        cfg["architectures"] = ["WavLMForCTC"]
    (folder / "config.json").write_text(json.dumps(cfg))
    if safetensors:
        write_safetensors(folder / "model.safetensors", state)
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def to_microsoft(ta_state: Dict[str, torch.Tensor], conf: Dict = TINY) -> Dict[str, torch.Tensor]:
    """torchaudio names -> the fairseq-style names of Microsoft's WavLM release."""
    out = {}
    layer_norm_ext = conf["extractor_mode"] == "layer_norm"
    for k, v in ta_state.items():
        if k.startswith("feature_extractor.conv_layers."):
            k = k.replace(".conv.", ".0.").replace(".layer_norm.", ".2.1." if layer_norm_ext else ".2.")
        k = k.replace("encoder.feature_projection.projection.", "post_extract_proj.")
        k = k.replace("encoder.feature_projection.layer_norm.", "layer_norm.")
        k = k.replace("encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv.0.weight_g")
        k = k.replace("encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv.0.weight_v")
        k = k.replace("encoder.transformer.pos_conv_embed.conv.bias", "encoder.pos_conv.0.bias")
        k = k.replace("encoder.transformer.", "encoder.")
        k = k.replace(".attention.attention.out_proj.", ".self_attn.out_proj.")
        k = k.replace(".attention.gru_rel_pos_linear.", ".self_attn.grep_linear.")
        k = k.replace(".attention.gru_rel_pos_const", ".self_attn.grep_a")
        k = k.replace(".attention.rel_attn_embed.", ".self_attn.relative_attention_bias.")
        k = k.replace(".feed_forward.intermediate_dense.", ".fc1.").replace(".feed_forward.output_dense.", ".fc2.")
        if k.startswith("encoder.layers.") and ".layer_norm." in k:
            k = k.replace(".layer_norm.", ".self_attn_layer_norm.")
        out[k] = v.clone()
    for i in range(conf["num_blocks"]):
        _split_qkv(out, f"encoder.layers.{i}.attention.attention.", f"encoder.layers.{i}.self_attn.")
    out["mask_emb"] = torch.rand(conf["hidden_size"])
    return out


def conv_expression(layers) -> str:
    """fairseq's way of writing a conv stack: runs of equal layers as ``[(d, k, s)] * n``."""
    runs = []
    for layer in map(tuple, layers):
        if runs and runs[-1][0] == layer:
            runs[-1][1] += 1
        else:
            runs.append([layer, 1])
    return " + ".join(f"[{layer}]" + (f" * {n}" if n > 1 else "") for layer, n in runs)


def microsoft_cfg(conf: Dict = TINY) -> Dict:
    layers = conf["extractor_conv_layers"]
    return {
        "extractor_mode": "default" if conf["extractor_mode"] == "group_norm" else "layer_norm",
        "encoder_layers": conf["num_blocks"], "encoder_embed_dim": conf["hidden_size"],
        "encoder_ffn_embed_dim": conf["linear_units"], "encoder_attention_heads": conf["attention_heads"],
        "activation_fn": "gelu", "layer_norm_first": conf["layer_norm_first"],
        # fairseq writes the conv stack as a Python expression
        "conv_feature_layers": conv_expression(layers),
        "conv_bias": conf["extractor_conv_bias"], "feature_grad_mult": 0.1, "normalize": False,
        "conv_pos": conf["pos_conv_kernel"], "conv_pos_groups": conf["pos_conv_groups"],
        "relative_position_embedding": True, "num_buckets": conf["num_buckets"],
        "max_distance": conf["max_distance"], "gru_rel_pos": True, "mask_prob": 0.65,
    }


def save_microsoft(path: Path, model: torch.nn.Module, conf: Dict = TINY) -> Path:
    torch.save({"cfg": microsoft_cfg(conf), "model": to_microsoft(model.state_dict(), conf)}, path)
    return path


def save_torchaudio(path: Path, model: torch.nn.Module) -> Path:
    torch.save(model.state_dict(), path)
    return path


def expected_encoder_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """torchaudio's weights under the encoder's names (written out, not imported)."""
    out = {}
    for k, v in model.state_dict().items():
        k = k.replace("encoder.transformer.layers.", "encoders.").replace("encoder.transformer.", "")
        out[k.replace("encoder.feature_projection.", "feature_projection.")] = v
    return out
