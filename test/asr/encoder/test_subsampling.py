"""input_layer conv1d4x (espnet_dld.asr.encoder.subsampling): lengths, masks,
padding, ESPnet's too-short error, static/dynamic equivalence, teacher init."""
import sys
from pathlib import Path

import pytest
import torch
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model

from espnet_dld.compat import TooShortUttError, embedding
from espnet_dld.asr.encoder.dld_conformer_encoder import DLDConformerEncoder
from espnet_dld.asr.encoder.dld_transformer_encoder import DLDTransformerEncoder
from espnet_dld.asr.encoder.static_encoders import StaticConformerEncoder, StaticTransformerEncoder
from espnet_dld.asr.encoder.subsampling import Conv1dSubsampling4

PositionalEncoding, RelPositionalEncoding = embedding.PositionalEncoding, embedding.RelPositionalEncoding
# the recipes' CTC length filter (a stage helper, not part of the package)
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "egs2" / "TEMPLATE" / "dld1" / "pyscripts"))
from filter_ctc_lengths import subsampled_frames  # noqa: E402

IDIM = 20
SMALL = dict(output_size=16, attention_heads=2, linear_units=32, num_blocks=4, input_layer="conv1d4x")
CONFORMER_ABS = dict(SMALL, cnn_module_kernel=3, pos_enc_layer_type="abs_pos", selfattention_layer_type="selfattn")
CONFORMER_REL = dict(SMALL, cnn_module_kernel=3, pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn",
                     rel_pos_type="latest")
PAIRS = {
    "conformer_abs": (DLDConformerEncoder, StaticConformerEncoder, CONFORMER_ABS),
    "conformer_rel": (DLDConformerEncoder, StaticConformerEncoder, CONFORMER_REL),
    "transformer": (DLDTransformerEncoder, StaticTransformerEncoder, SMALL),
}


def reference_frames(n: int) -> int:
    """Output frames of the two convolutions run on the utterance alone."""
    convs = torch.nn.Sequential(torch.nn.Conv1d(1, 1, 3, 2), torch.nn.Conv1d(1, 1, 3, 2))
    return convs(torch.zeros(1, 1, n)).shape[-1]


@pytest.mark.parametrize("n", range(7, 30))
def test_lengths_equal_the_convolutions_and_espnets_conv2d(n):
    enc = StaticConformerEncoder(IDIM, **CONFORMER_REL).eval()
    out, olens, _ = enc(torch.randn(1, n, IDIM), torch.tensor([n]))
    assert out.shape[1] == olens.item() == reference_frames(n) == ((n - 1) // 2 - 1) // 2
    assert subsampled_frames(n, "conv1d4x") == olens.item()  # the CTC length filter agrees


@pytest.mark.parametrize("kind", PAIRS)
def test_padded_batch_gives_each_utterance_its_own_frames(kind):
    enc = PAIRS[kind][1](IDIM, **PAIRS[kind][2]).eval()
    lens = [41, 40, 23, 8, 7]  # odd and even, down to the minimum
    xs = [torch.randn(n, IDIM, generator=torch.Generator().manual_seed(n)) for n in lens]
    batch = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    with torch.no_grad():
        out, olens, _ = enc(batch, torch.tensor(lens))
        assert olens.tolist() == [reference_frames(n) for n in lens] == [9, 9, 5, 1, 1]
        # the front end's kept frames equal the utterance's own: none has seen padding
        # (the blocks after it may mix padding in, as in any ESPnet conformer)
        mask = torch.arange(batch.shape[1])[None, None, :] < torch.tensor(lens)[:, None, None]
        emb, emb_mask = enc.embed(batch, mask)
        emb = emb[0] if isinstance(emb, tuple) else emb
        for i, x in enumerate(xs):
            alone, alone_len, _ = enc(x[None], torch.tensor([len(x)]))
            assert alone_len.item() == olens[i].item() == emb_mask[i].sum().item()
            alone_emb, _ = enc.embed(x[None], torch.ones(1, 1, len(x), dtype=torch.bool))
            alone_emb = alone_emb[0] if isinstance(alone_emb, tuple) else alone_emb
            assert torch.allclose(emb[i, : olens[i]], alone_emb[0], atol=1e-5), i


def test_mask_and_positional_encoding_are_espnets():
    rel = StaticConformerEncoder(IDIM, **CONFORMER_REL)
    assert isinstance(rel.embed, Conv1dSubsampling4) and type(rel.embed[-1]) is RelPositionalEncoding
    assert type(StaticConformerEncoder(IDIM, **CONFORMER_ABS).embed.pos_enc) is PositionalEncoding
    assert type(StaticTransformerEncoder(IDIM, **SMALL).embed.pos_enc) is PositionalEncoding
    assert rel.embed.pos_enc.dropout.p == 0.1  # positional_dropout_rate, as ESPnet's input layers
    x, mask = rel.embed(torch.randn(2, 15, IDIM), torch.arange(15)[None, None, :] < torch.tensor([15, 11])[:, None, None])
    assert isinstance(x, tuple) and x[0].shape == (2, 3, 16)  # (x, pos_emb) for rel_pos blocks
    assert mask.tolist() == [[[True, True, True]], [[True, True, False]]]
    # two Conv1d, kernel 3, stride 2, no padding, feature channels straight to d_model
    convs = [m for m in rel.embed.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (IDIM, 16, (3,), (2,), (0,)), (16, 16, (3,), (2,), (0,))]
    assert sorted(n for n, _ in rel.embed.named_parameters()) == [
        "conv.0.bias", "conv.0.weight", "conv.1.bias", "conv.1.weight"]


@pytest.mark.parametrize("kind", PAIRS)
def test_too_short_input_gets_espnets_error(kind):
    dyn_cls, static_cls, conf = PAIRS[kind]
    for cls in (dyn_cls, static_cls):
        enc = cls(IDIM, **conf).eval()
        with pytest.raises(TooShortUttError, match="has 6 frames and is too short for subsampling"):
            enc(torch.randn(1, 6, IDIM), torch.tensor([6]))
        assert enc(torch.randn(1, 7, IDIM), torch.tensor([7]))[1].tolist() == [1]


@pytest.mark.parametrize("kind", PAIRS)
def test_full_depth_dynamic_equals_static(kind):
    dyn_cls, static_cls, conf = PAIRS[kind]
    dyn, static = dyn_cls(IDIM, **conf).eval(), static_cls(IDIM, **conf).eval()
    assert list(dyn.state_dict()) == list(static.state_dict())
    static.load_state_dict(dyn.state_dict())
    x, lens = torch.randn(3, 50, IDIM), torch.tensor([50, 37, 12])
    with torch.no_grad():
        (a, alen, _), (b, blen, _) = dyn(x, lens), static(x, lens)
    assert torch.equal(alen, blen) and torch.allclose(a, b, atol=1e-6)
    dyn.set_depth(2)  # and a depth really skips blocks behind the same front end
    with torch.no_grad():
        assert not torch.allclose(dyn(x, lens)[0], a)


def test_espnet_input_layers_are_unchanged():
    conf = dict(CONFORMER_REL, input_layer="conv2d")
    ours, espnet = StaticConformerEncoder(IDIM, **conf), ConformerEncoder(IDIM, **conf)
    assert type(ours.embed) is type(espnet.embed) and list(ours.state_dict()) == list(espnet.state_dict())
    with pytest.raises(ValueError, match="unknown input_layer: conv1d"):
        StaticConformerEncoder(IDIM, **dict(conf, input_layer="conv1d"))


def test_student_init_from_the_teacher_keeps_every_parameter():
    """What ``--init_param`` (``dld.sh --student_init teacher``) does, on the encoders."""
    teacher = StaticConformerEncoder(IDIM, **CONFORMER_REL)
    student = DLDConformerEncoder(IDIM, **CONFORMER_REL, layer_drop_prob=0.5)
    assert list(teacher.state_dict()) == list(student.state_dict())
    student.load_state_dict(teacher.state_dict(), strict=True)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in teacher.state_dict().items())


def test_init_param_through_espnet(tmp_path):
    teacher = torch.nn.ModuleDict({"encoder": StaticConformerEncoder(IDIM, **CONFORMER_REL)})
    student = torch.nn.ModuleDict({"encoder": DLDConformerEncoder(IDIM, **CONFORMER_REL)})
    torch.save(teacher.state_dict(), tmp_path / "teacher.pth")
    load_pretrained_model(str(tmp_path / "teacher.pth"), student, "cpu")
    embed = "encoder.embed.conv.1.weight"
    assert torch.equal(student.state_dict()[embed], teacher.state_dict()[embed])
