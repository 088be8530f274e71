"""Per-block gates and depth selection shared by every dynamic-depth encoder.

One place owns the rules of DLD's layer dropping (docs/method.md): in training each
block is dropped independently with ``layer_drop_prob``, the gates are drawn
once per mini-batch so a dropped block is really skipped, and at least
``min_active_layers`` blocks run; at inference ``set_depth`` picks exactly
which blocks run, by a depth policy: ``uniform``, ``first``, or ``profile``
(per-depth subsets measured on dev data by ``espnet_dld.bin.depth_profile``
and set with ``set_depth_profile``).  Encoders wrap their block list in :class:`GatedLayerStack`
and mix in :class:`DynamicDepthMixin`; they hold no gating logic of their own.

In ESPnet training the trainer names the optimizer update before each
micro-batch (:func:`set_gate_update`): the gates then come from a private
generator seeded from ``(--seed, epoch, update)``, so every DDP rank and
every micro-batch of one update (``accum_grad``) runs the same blocks, and a
resumed run draws what an uninterrupted one would (docs/distributed.md).
"""
from __future__ import annotations

import hashlib
import math
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch

from espnet_dld.utils.signature import extend_signature

DEPTH_POLICIES = ("uniform", "first", "profile")
#: how a missing profile is produced, for error messages
PROFILE_HOWTO = (
    "measure one on dev data with `python -m espnet_dld.bin.depth_profile --asr_model_file <model.pth> "
    "--data_path_and_name_and_type <dev>/wav.scp,speech,sound --data_path_and_name_and_type <dev>/text,text,text` "
    "(it writes depth_profile.yaml beside the model file, where Speech2Text finds it)"
)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def uniform_layers(num_layers: int, depth: int) -> List[int]:
    """``depth`` evenly spaced block indices of ``num_layers``, always ending
    with the last block (the one the output layer was trained behind)."""
    return [int(math.floor((j + 1) * num_layers / depth + 0.5)) - 1 for j in range(depth)]


def first_layers(num_layers: int, depth: int) -> List[int]:
    """The first ``depth`` blocks (early exit)."""
    return list(range(depth))


_POLICY_FUNCS = {"uniform": uniform_layers, "first": first_layers}


def check_policy(depth_policy, name: str = "depth_policy") -> str:
    """Validate a depth policy name; ValueError names the value and the choices."""
    if depth_policy not in DEPTH_POLICIES:
        raise ValueError(f"{name} must be one of {list(DEPTH_POLICIES)}, got {depth_policy!r}")
    return depth_policy


def check_depth(depth, num_layers: int, name: str = "depth") -> int:
    """Validate an inference depth; ValueError names the value and the range."""
    if not _is_int(depth):
        raise ValueError(
            f"{name} must be an integer in 1..{num_layers} (or None for all "
            f"{num_layers} blocks), got {depth!r} ({type(depth).__name__})"
        )
    if not 1 <= depth <= num_layers:
        raise ValueError(
            f"{name}={depth} is out of range: the encoder has {num_layers} blocks, "
            f"valid depths are 1..{num_layers}"
        )
    return depth


def check_layers(layers: Sequence[int], num_layers: int) -> List[int]:
    """Validate an explicit list of block indices (0-based, unique, sorted on return)."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(f"layers must be a list of block indices in 0..{num_layers - 1}, got {layers!r}")
    if len(layers) == 0:
        raise ValueError(f"layers must name at least one block in 0..{num_layers - 1}, got []")
    bad = [i for i in layers if not _is_int(i) or not 0 <= i < num_layers]
    if bad:
        raise ValueError(
            f"layers {list(layers)} contains {bad}: block indices must be integers in 0..{num_layers - 1}"
        )
    dup = sorted({i for i in layers if list(layers).count(i) > 1})
    if dup:
        raise ValueError(f"layers {list(layers)} repeats block(s) {dup}; each block can run at most once")
    return sorted(layers)


def check_profile(profile: Mapping[int, Sequence[int]], num_layers: int) -> Dict[int, List[int]]:
    """Validate a depth profile (``{depth: block indices}``): one entry for
    every depth 1..N, entry k naming k distinct blocks in 0..N-1.  Nesting
    across depths is not required (a hand-written profile need not be).
    Returns it with int keys and sorted lists."""
    if not isinstance(profile, Mapping):
        raise ValueError(f"a depth profile maps each depth 1..{num_layers} to its blocks, got {type(profile).__name__}")
    bad_keys = [k for k in profile if not _is_int(k)]
    if bad_keys:
        raise ValueError(f"depths must be integers 1..{num_layers}, got {bad_keys}")
    missing = [k for k in range(1, num_layers + 1) if k not in profile]
    extra = sorted(k for k in profile if not 1 <= k <= num_layers)
    if missing or extra:
        raise ValueError(
            f"a profile for {num_layers} blocks needs exactly the depths 1..{num_layers}"
            + (f"; missing {missing}" if missing else "") + (f"; out of range {extra}" if extra else "")
        )
    out = {}
    for depth in range(num_layers, 0, -1):
        try:
            layers = check_layers(profile[depth], num_layers)
        except ValueError as e:
            raise ValueError(f"depth {depth}: {e}") from None
        if len(layers) != depth:
            raise ValueError(f"depth {depth} lists {len(layers)} blocks {layers}; it must list exactly {depth}")
        out[depth] = layers
    return out


class LayerGate:
    """Decides, for every forward pass, which blocks of an N-block stack run."""

    def __init__(
        self,
        num_layers: int,
        layer_drop_prob: float = 0.5,
        min_active_layers: int = 1,
        depth_policy: str = "uniform",
    ):
        if not _is_int(num_layers) or num_layers < 1:
            raise ValueError(f"num_layers (the encoder's num_blocks) must be a positive integer, got {num_layers!r}")
        if isinstance(layer_drop_prob, bool) or not isinstance(layer_drop_prob, (int, float)) or not (
            0.0 <= float(layer_drop_prob) < 1.0
        ):
            raise ValueError(f"layer_drop_prob must be a probability in [0, 1), got {layer_drop_prob!r}")
        if not _is_int(min_active_layers) or not 1 <= min_active_layers <= num_layers:
            raise ValueError(
                f"min_active_layers must be an integer in 1..{num_layers} (num_blocks), got {min_active_layers!r}"
            )
        check_policy(depth_policy)
        self.num_layers = num_layers
        self.layer_drop_prob = float(layer_drop_prob)
        self.min_active_layers = min_active_layers
        self.depth_policy = depth_policy
        self.profile: Optional[Dict[int, List[int]]] = None
        self._fixed: Optional[List[int]] = None  # None: all blocks
        self._depth: Optional[int] = None  # the depth _fixed was chosen for (None: all blocks or explicit layers)
        self._update: Optional[Tuple[int, int, int, int]] = None  # (seed, epoch, update, stream) from the trainer
        self._update_layers: Optional[Tuple[Tuple[int, int, int, int], List[int]]] = None  # its draw

    # -- inference -------------------------------------------------------
    def layers_for(self, depth: int, depth_policy: Optional[str] = None) -> List[int]:
        """The blocks that ``depth_policy`` (default: this gate's) runs at ``depth``."""
        policy = check_policy(self.depth_policy if depth_policy is None else depth_policy)
        check_depth(depth, self.num_layers)
        if policy != "profile":
            return _POLICY_FUNCS[policy](self.num_layers, depth)
        if self.profile is None:
            raise ValueError(
                f"depth={depth} with depth_policy 'profile', but no depth profile is loaded: {PROFILE_HOWTO}; "
                "or choose depth_policy uniform or first"
            )
        return list(self.profile[depth])

    def set_depth(self, depth: Optional[int] = None, layers: Optional[Sequence[int]] = None) -> List[int]:
        """Fix the blocks used outside training; returns them."""
        if depth is not None and layers is not None:
            raise ValueError(f"give either depth ({depth!r}) or layers ({layers!r}), not both")
        if layers is not None:
            self._fixed, self._depth = check_layers(layers, self.num_layers), None
        elif depth is None:
            self._fixed, self._depth = None, None
        else:
            self._fixed, self._depth = self.layers_for(depth), depth
        return self.active_layers

    def set_policy(self, depth_policy: str) -> List[int]:
        """Choose blocks by ``depth_policy`` from now on; a depth set before
        is re-chosen by it (nothing changes if that fails).  Returns the
        active blocks."""
        check_policy(depth_policy)
        if self._depth is not None:
            self._fixed = self.layers_for(self._depth, depth_policy)
        self.depth_policy = depth_policy
        return self.active_layers

    def set_profile(self, profile: Optional[Mapping[int, Sequence[int]]]) -> None:
        """Load (or with None drop) the per-depth blocks of policy ``profile``;
        see :func:`check_profile`.  A depth set before is re-chosen when the
        policy is ``profile``."""
        checked = None if profile is None else check_profile(profile, self.num_layers)
        if self.depth_policy == "profile" and self._depth is not None:
            if checked is None:
                raise ValueError(f"cannot drop the depth profile while depth {self._depth} uses it")
            self._fixed = list(checked[self._depth])
        self.profile = checked

    @property
    def active_layers(self) -> List[int]:
        """Blocks that run in eval mode (or in training without dropping)."""
        return list(range(self.num_layers)) if self._fixed is None else list(self._fixed)

    # -- training --------------------------------------------------------
    def sample(self, generator: Optional[torch.Generator] = None) -> List[int]:
        """Draw one mini-batch's gates: keep each block with prob. 1 - p, then
        switch random dropped blocks back on until ``min_active_layers`` run.

        Draws from ``generator``, or from torch's global RNG when None.
        """
        keep = torch.rand(self.num_layers, generator=generator) >= self.layer_drop_prob
        missing = self.min_active_layers - int(keep.sum())
        if missing > 0:
            dropped = torch.nonzero(~keep).flatten()
            revive = dropped[torch.randperm(len(dropped), generator=generator)[:missing]]
            keep[revive] = True
        return torch.nonzero(keep).flatten().tolist()

    def set_update(self, seed: int, epoch: int, update: int, stream: int = 0) -> None:
        """Draw the training gates of optimizer update ``update`` of ``epoch``
        from now on: one draw, a function of ``(seed, epoch, update, stream)``
        only, returned by every ``select`` until the next ``set_update``."""
        self._update = (int(seed), int(epoch), int(update), int(stream))

    def clear_update(self) -> None:
        """Back to a fresh draw from torch's global RNG at every ``select``."""
        self._update, self._update_layers = None, None

    @property
    def update(self) -> Optional[Tuple[int, int, int, int]]:
        """``(seed, epoch, update, stream)`` the gates are drawn for, or None."""
        return self._update

    def select(self, training: bool) -> List[int]:
        """Blocks for the next forward pass."""
        if not (training and self.layer_drop_prob > 0.0):
            return self.active_layers
        if self._update is None:
            return self.sample()
        if self._update_layers is None or self._update_layers[0] != self._update:
            self._update_layers = (self._update, self.sample(update_generator(*self._update)))
        return list(self._update_layers[1])


def update_generator(seed: int, epoch: int, update: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, epoch, update, stream)`` alone, the
    same in every process (a hash, not Python's salted ``hash``)."""
    digest = hashlib.blake2b(f"dld-gates:{seed}:{epoch}:{update}:{stream}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def gated_stacks(model: torch.nn.Module) -> List["GatedLayerStack"]:
    """Every gated block stack in ``model`` (DDP/DataParallel wrappers included), in module order."""
    return [m for m in model.modules() if isinstance(m, GatedLayerStack)]


def set_gate_update(model: torch.nn.Module, seed: int, epoch: int, update: int) -> int:
    """Name the optimizer update the next forward passes belong to, for every
    gated stack of ``model`` (each its own stream); returns how many."""
    stacks = gated_stacks(model)
    for stream, stack in enumerate(stacks):
        stack.gate.set_update(seed, epoch, update, stream)
    return len(stacks)


class DDPConfigError(ValueError):
    """A dynamic-depth model about to be trained under DDP with a configuration that cannot work."""


def check_ddp_ready(model: torch.nn.Module, unused_parameters: bool, config: str = "the training config") -> None:
    """Before the first DDP step: a model whose blocks are dropped in training
    leaves parameters without gradient in some steps, which DDP allows only
    with ``unused_parameters: true`` (else it stops at the next step with
    "Expected to have finished reduction in the prior iteration")."""
    dropping = [s for s in gated_stacks(model) if s.gate.layer_drop_prob > 0.0]
    if dropping and not unused_parameters:
        raise DDPConfigError(
            f"distributed training of a dynamic-depth encoder (layer_drop_prob={dropping[0].gate.layer_drop_prob}) "
            f"needs unused_parameters: true (ESPnet's --unused_parameters true): dropped blocks get no gradient "
            f"in a step, which DDP rejects otherwise; add it to {config}"
        )


class _SkippedBlock(torch.nn.Module):
    """Stand-in for a dropped block: identity, or the block's final norm."""

    def __init__(self, norm: Optional[Callable]):
        super().__init__()
        self._norm = [norm]  # a list keeps the norm out of this module's children

    def forward(self, x, mask, *args, **kwargs):
        norm = self._norm[0]
        if norm is not None:
            if isinstance(x, tuple):  # relative positional encoding: (x, pos_emb)
                x = (norm(x[0]),) + tuple(x[1:])
            else:
                x = norm(x)
        return (x, mask) if not args else (x, mask) + tuple(args)


class GatedLayerStack(torch.nn.Module):
    """Drop-in replacement for ESPnet's ``MultiSequential`` block list.

    The blocks stay children "0".."N-1", so parameter names are those of
    ESPnet's own encoders.  ``forward`` runs only the blocks chosen by the
    gate; iterating yields a skip stand-in in place of each dropped block, so
    ESPnet code that loops over the blocks itself (intermediate CTC) keeps
    its block indices while still not computing dropped blocks.
    """

    def __init__(
        self,
        blocks: torch.nn.Module,
        gate: LayerGate,
        final_norm_of: Optional[Callable[[torch.nn.Module], Optional[Callable]]] = None,
    ):
        super().__init__()
        for i, block in enumerate(blocks):
            self.add_module(str(i), block)
        self.gate = gate
        self._final_norm_of = final_norm_of
        self._current: Optional[List[int]] = None

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, idx: int) -> torch.nn.Module:
        return self._modules[str(range(len(self))[idx])]

    def blocks(self) -> List[torch.nn.Module]:
        return [self._modules[str(i)] for i in range(len(self))]

    def _plan(self) -> List[Tuple[int, torch.nn.Module]]:
        active = set(self.gate.select(self.training))
        self._current = sorted(active)
        plan = []
        for i, block in enumerate(self.blocks()):
            if i in active:
                plan.append((i, block))
            else:
                norm = self._final_norm_of(block) if self._final_norm_of is not None else None
                plan.append((i, _SkippedBlock(norm)))
        return plan

    @property
    def last_active_layers(self) -> Optional[List[int]]:
        """Blocks that ran in the most recent forward pass (for logging)."""
        return self._current

    def __iter__(self) -> Iterator[torch.nn.Module]:
        return iter([module for _, module in self._plan()])

    def forward(self, *args):
        for _, module in self._plan():
            if isinstance(module, _SkippedBlock) and module._norm[0] is None:
                continue  # identity: nothing to compute
            args = module(*args)
        return args


class DynamicDepthMixin:
    """Turns an ESPnet encoder whose blocks live in ``self.encoders`` into a
    dynamic-depth one: mix it in before the ESPnet class and name the block's
    final norm in ``final_norm_of``.  Adds ``set_depth`` / ``active_layers``.
    """

    encoders: GatedLayerStack
    #: returns a block's last LayerNorm, or None (see make_blocks_dynamic)
    final_norm_of: Callable[[torch.nn.Module], Optional[Callable]] = staticmethod(lambda block: None)
    #: the options this mixin adds to every dynamic encoder
    DYNAMIC_OPTIONS = ("layer_drop_prob", "min_active_layers", "depth_policy", "keep_final_norm_when_dropped")

    def __init__(
        self,
        input_size: int,
        *,
        layer_drop_prob: float = 0.5,
        min_active_layers: int = 1,
        depth_policy: str = "uniform",
        keep_final_norm_when_dropped: bool = False,
        **kwargs,
    ):
        super().__init__(input_size, **kwargs)
        make_blocks_dynamic(
            self, layer_drop_prob, min_active_layers, depth_policy, keep_final_norm_when_dropped, self.final_norm_of
        )

    def set_depth(self, depth: Optional[int] = None, layers: Optional[Sequence[int]] = None) -> List[int]:
        """Run exactly ``depth`` blocks (chosen by ``depth_policy``) or the
        blocks in ``layers`` outside training; ``None`` restores all blocks."""
        return self.encoders.gate.set_depth(depth=depth, layers=layers)

    def layers_for(self, depth: int) -> List[int]:
        """The blocks the current depth policy runs at ``depth`` (nothing is set)."""
        return self.encoders.gate.layers_for(depth)

    def set_depth_policy(self, depth_policy: str) -> List[int]:
        """Choose the blocks of a depth by ``depth_policy`` (``uniform``,
        ``first`` or ``profile``) from now on, overriding the config's; a
        depth already set is re-chosen.  Training sampling is unaffected."""
        return self.encoders.gate.set_policy(depth_policy)

    def set_depth_profile(self, profile: Optional[Mapping[int, Sequence[int]]]) -> None:
        """Per-depth blocks (``{k: [block, ...]}`` for k = 1..N) used by policy
        ``profile``; load them from a file with
        :func:`espnet_dld.asr.encoder.depth_profile_file.load_depth_profile`."""
        self.encoders.gate.set_profile(profile)

    @property
    def depth_policy(self) -> str:
        return self.encoders.gate.depth_policy

    @property
    def depth_profile(self) -> Optional[Dict[int, List[int]]]:
        return self.encoders.gate.profile

    @property
    def active_layers(self) -> List[int]:
        return self.encoders.gate.active_layers

    @property
    def num_layers(self) -> int:
        return self.encoders.gate.num_layers

    @property
    def last_active_layers(self) -> Optional[List[int]]:
        return self.encoders.last_active_layers


def dynamic_encoder_signature(cls: type, base: type) -> type:
    """``cls`` (mixin + ``base``) shows ``base``'s options and the mixin's."""
    return extend_signature(cls, base, DynamicDepthMixin.__init__, DynamicDepthMixin.DYNAMIC_OPTIONS)


def make_blocks_dynamic(
    encoder: torch.nn.Module,
    layer_drop_prob: float,
    min_active_layers: int,
    depth_policy: str,
    keep_final_norm_when_dropped: bool,
    final_norm_of: Callable[[torch.nn.Module], Optional[Callable]],
) -> None:
    """Replace ``encoder.encoders`` (ESPnet's block list) by a gated stack.

    ``final_norm_of(block)`` returns the block's last LayerNorm (or None);
    it is applied in place of a dropped block when
    ``keep_final_norm_when_dropped`` is set.
    """
    espnet_drop = getattr(encoder.encoders, "layer_drop_rate", 0.0)
    if espnet_drop:
        raise ValueError(
            f"layer_drop_rate={espnet_drop} is ESPnet's own layer drop; {type(encoder).__name__} "
            "uses layer_drop_prob instead (leave layer_drop_rate at 0)"
        )
    blocks = list(encoder.encoders)
    gate = LayerGate(len(blocks), layer_drop_prob, min_active_layers, depth_policy)
    if keep_final_norm_when_dropped:
        lacking = [i for i, b in enumerate(blocks) if final_norm_of(b) is None]
        if lacking:
            raise ValueError(
                "keep_final_norm_when_dropped=true needs blocks that end with a LayerNorm, "
                f"but blocks {lacking} of {type(encoder).__name__} have none with this "
                "configuration (conformer: use_cnn_module=true; transformer: normalize_before=false)"
            )
        norm_of = final_norm_of
    else:
        norm_of = None
    encoder.encoders = GatedLayerStack(blocks, gate, final_norm_of=norm_of)
