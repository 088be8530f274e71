"""The shared gate: statistics, minimum depth, policies and value checks."""
import pytest
import torch

from espnet_dld.asr.encoder.layer_gating import (
    DDPConfigError,
    GatedLayerStack,
    LayerGate,
    check_ddp_ready,
    check_profile,
    first_layers,
    set_gate_update,
    uniform_layers,
)

PROFILE = {4: [0, 1, 2, 3], 3: [0, 1, 2], 2: [0, 2], 1: [0]}  # not what uniform or first choose


@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_gate_drop_rate_matches_probability(p):
    torch.manual_seed(0)
    gate = LayerGate(12, layer_drop_prob=p)
    steps = 4000
    kept = torch.zeros(12)
    for _ in range(steps):
        kept[gate.sample()] += 1
    drop_rate = 1 - kept / steps
    # the at-least-one rule revives a block in p^12 of the steps: negligible here
    assert torch.allclose(drop_rate, torch.full((12,), p), atol=0.035), drop_rate


def test_gates_are_drawn_per_step_and_reproducible():
    torch.manual_seed(3)
    a = [LayerGate(8).sample() for _ in range(20)]
    torch.manual_seed(3)
    b = [LayerGate(8).sample() for _ in range(20)]
    assert a == b
    assert len({tuple(x) for x in a}) > 5  # redrawn every step


@pytest.mark.parametrize("min_active", [1, 3, 6])
def test_never_fewer_than_min_active_layers(min_active):
    torch.manual_seed(1)
    gate = LayerGate(6, layer_drop_prob=0.95, min_active_layers=min_active)
    counts = [len(gate.sample()) for _ in range(2000)]
    assert min(counts) == min_active
    assert all(sorted(set(x)) == x for x in (gate.sample() for _ in range(50)))


def test_select_uses_fixed_layers_outside_training_and_without_dropping():
    gate = LayerGate(6, layer_drop_prob=0.5)
    gate.set_depth(2)
    assert gate.select(training=False) == [2, 5]
    no_drop = LayerGate(6, layer_drop_prob=0.0)
    assert no_drop.select(training=True) == list(range(6))


@pytest.mark.parametrize(
    "n, k, expected",
    [(12, 12, list(range(12))), (12, 6, [1, 3, 5, 7, 9, 11]), (12, 4, [2, 5, 8, 11]), (12, 1, [11]),
     (12, 5, [1, 4, 6, 9, 11]), (4, 3, [0, 2, 3])],
)
def test_uniform_policy_is_evenly_spaced_and_keeps_last_block(n, k, expected):
    assert uniform_layers(n, k) == expected
    gate = LayerGate(n, depth_policy="uniform")
    assert gate.set_depth(k) == expected
    assert gate.active_layers == expected


def test_first_policy_and_explicit_layers_and_reset():
    gate = LayerGate(12, depth_policy="first")
    assert gate.set_depth(3) == [0, 1, 2] == first_layers(12, 3)
    assert gate.set_depth(layers=[7, 2, 11]) == [2, 7, 11]
    assert gate.set_depth(None) == list(range(12))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"depth": 0}, "valid depths are 1..12"),
        ({"depth": 13}, "depth=13 is out of range"),
        ({"depth": 2.5}, "must be an integer in 1..12"),
        ({"depth": True}, "must be an integer in 1..12"),
        ({"depth": "3"}, "got '3'"),
        ({"layers": [1, 1]}, "repeats block(s) [1]"),
        ({"layers": [0, 12]}, "contains [12]"),
        ({"layers": [-1]}, "contains [-1]"),
        ({"layers": []}, "at least one block"),
        ({"layers": [1.0]}, "integers in 0..11"),
        ({"depth": 2, "layers": [1]}, "not both"),
    ],
)
def test_bad_depth_values_raise_value_error_naming_value_and_range(kwargs, fragment):
    gate = LayerGate(12)
    with pytest.raises(ValueError) as e:
        gate.set_depth(**kwargs)
    assert fragment in str(e.value)
    assert gate.active_layers == list(range(12))  # unchanged after a refusal


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"layer_drop_prob": 1.0}, "[0, 1), got 1.0"),
        ({"layer_drop_prob": -0.1}, "[0, 1), got -0.1"),
        ({"layer_drop_prob": "0.5"}, "got '0.5'"),
        ({"min_active_layers": 0}, "in 1..12"),
        ({"min_active_layers": 13}, "in 1..12"),
        ({"depth_policy": "random"}, "['uniform', 'first', 'profile'], got 'random'"),
    ],
)
def test_bad_gate_options_raise(kwargs, fragment):
    with pytest.raises(ValueError) as e:
        LayerGate(12, **kwargs)
    assert fragment in str(e.value)


def test_profile_policy_uses_the_loaded_profile_and_refuses_without_one():
    gate = LayerGate(4, depth_policy="profile")
    with pytest.raises(ValueError) as e:
        gate.set_depth(2)
    assert "no depth profile is loaded" in str(e.value) and "python -m espnet_dld.bin.depth_profile" in str(e.value)
    assert gate.active_layers == [0, 1, 2, 3]  # unchanged after the refusal
    gate.set_profile(PROFILE)
    assert [gate.set_depth(k) for k in (1, 2, 3, 4)] == [PROFILE[k] for k in (1, 2, 3, 4)]
    assert gate.set_depth(layers=[3, 1]) == [1, 3]  # explicit blocks still win
    assert gate.select(training=False) == [1, 3]


def test_changing_the_policy_or_profile_rechooses_the_depth_set_before():
    gate = LayerGate(4)  # uniform
    assert gate.set_depth(2) == [1, 3]
    assert gate.set_policy("first") == [0, 1]
    with pytest.raises(ValueError, match="no depth profile is loaded"):
        gate.set_policy("profile")
    assert gate.depth_policy == "first" and gate.active_layers == [0, 1]  # a refused change changes nothing
    gate.set_profile(PROFILE)
    assert gate.set_policy("profile") == [0, 2]
    gate.set_profile({**PROFILE, 2: [1, 2]})
    assert gate.active_layers == [1, 2]
    with pytest.raises(ValueError, match="depth_policy must be one of"):
        gate.set_policy("best")
    gate.set_depth(None)
    assert gate.set_policy("uniform") == [0, 1, 2, 3]  # all blocks stay all blocks


def test_training_sampling_ignores_the_profile():
    torch.manual_seed(5)
    plain = [LayerGate(4).sample() for _ in range(30)]
    torch.manual_seed(5)
    gate = LayerGate(4, depth_policy="profile")
    gate.set_profile(PROFILE)
    gate.set_depth(1)
    assert [gate.select(training=True) for _ in range(30)] == plain


@pytest.mark.parametrize(
    "profile, fragment",
    [
        ({**PROFILE, 2: [0]}, "depth 2 lists 1 blocks [0]; it must list exactly 2"),
        ({**PROFILE, 2: [0, 4]}, "depth 2: layers [0, 4] contains [4]"),
        ({**PROFILE, 3: [0, 0, 1]}, "repeats block(s) [0]"),
        ({k: v for k, v in PROFILE.items() if k != 3}, "needs exactly the depths 1..4; missing [3]"),
        ({**PROFILE, 5: [0, 1, 2, 3, 3]}, "out of range [5]"),
        ({**PROFILE, "2": [0, 2]}, "depths must be integers"),
        ([[0]], "maps each depth"),
    ],
)
def test_bad_profiles_are_refused(profile, fragment):
    with pytest.raises(ValueError) as e:
        check_profile(profile, 4)
    assert fragment in str(e.value)
    gate = LayerGate(4)
    with pytest.raises(ValueError):
        gate.set_profile(profile)
    assert gate.profile is None


def test_a_profile_need_not_be_nested():
    odd = {3: [0, 1, 2], 2: [1, 2], 1: [0]}
    assert check_profile(odd, 3) == odd


# -- one draw per optimizer update (DDP ranks, accum_grad, resume) -----------------------------------------------


def _keyed(seed, epoch, update, num_layers=12):
    gate = LayerGate(num_layers)
    gate.set_update(seed, epoch, update)
    return gate.select(training=True)


def test_keyed_gates_ignore_the_global_rng():
    torch.manual_seed(0)
    a = _keyed(7, 3, 5)
    torch.manual_seed(123)
    torch.rand(1000)  # another rank's SpecAugment / dropout draws
    b = _keyed(7, 3, 5)
    assert a == b
    state = torch.get_rng_state()
    _keyed(7, 3, 5)
    assert torch.equal(state, torch.get_rng_state())  # nor do they move it


def test_keyed_gates_are_constant_within_an_update_and_change_across_updates():
    gate = LayerGate(12)
    gate.set_update(0, 1, 0)
    first = gate.select(training=True)
    assert all(gate.select(training=True) == first for _ in range(4))  # accum_grad micro-batches
    draws = []
    for update in range(40):
        gate.set_update(0, 1, update)
        draws.append(tuple(gate.select(training=True)))
    assert len(set(draws)) > 20
    other_epoch = [tuple(_keyed(0, 2, u)) for u in range(40)]
    other_seed = [tuple(_keyed(1, 1, u)) for u in range(40)]
    assert other_epoch != draws and other_seed != draws


def test_keyed_gates_keep_the_drop_statistics():
    p, n = 0.5, 3000
    kept = torch.zeros(12)
    for update in range(n):
        kept[_keyed(0, 1, update)] += 1
    assert torch.allclose(1 - kept / n, torch.full((12,), p), atol=0.04)


def test_set_gate_update_reaches_every_stack_and_eval_ignores_it():
    stacks = torch.nn.ModuleList(
        GatedLayerStack(torch.nn.ModuleList(torch.nn.Identity() for _ in range(8)), LayerGate(8)) for _ in range(2)
    )
    assert set_gate_update(stacks, seed=0, epoch=1, update=4) == 2
    a, b = (s.gate.select(training=True) for s in stacks)
    assert a == _keyed(0, 1, 4, 8)
    assert stacks[1].gate.update == (0, 1, 4, 1)  # its own stream
    assert stacks[0].gate.select(training=False) == list(range(8))
    stacks[0].gate.clear_update()
    assert stacks[0].gate.update is None


def test_ddp_needs_unused_parameters_for_dropping_stacks():
    stack = GatedLayerStack(torch.nn.ModuleList(torch.nn.Identity() for _ in range(4)), LayerGate(4))
    with pytest.raises(DDPConfigError, match=r"unused_parameters: true.*conf/x\.yaml"):
        check_ddp_ready(stack, unused_parameters=False, config="conf/x.yaml")
    check_ddp_ready(stack, unused_parameters=True)
    check_ddp_ready(GatedLayerStack(torch.nn.ModuleList([torch.nn.Identity()]), LayerGate(1, 0.0)), False)
