"""The training step's update (sweeplab.train.update): torch's fused Adam kernel called directly gives
torch.optim's numbers bit for bit, keeps the state in torch's format, and steps aside where it must."""

import copy

import pytest
import torch
from torch import nn

from sweeplab.optim import build_optimizer, fusable
from sweeplab.train.update import Update

SETTINGS = {
    "adam": dict(name="adam", lr=1e-2, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0),
    "adam_decay": dict(name="adam", lr=3e-3, betas=[0.8, 0.99], eps=1e-6, weight_decay=1e-2),
    "adamw": dict(name="adamw", lr=1e-2, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.1),
}


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]


def _model(device: str = "cpu") -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).to(device)


def _train(model: nn.Module, optimizer, update: Update | None, steps: range, lr_after: dict[int, float]):
    """Steps of a fixed regression problem; the rate changed at some steps, as a schedule does."""
    device = next(model.parameters()).device
    for step in steps:
        g = torch.Generator().manual_seed(step)
        x, y = torch.randn(16, 7, generator=g).to(device), torch.randn(16, 3, generator=g).to(device)
        if step in lr_after:
            optimizer.param_groups[0]["lr"] = lr_after[step]
        (update.zero_grad if update else lambda: optimizer.zero_grad(set_to_none=True))()
        ((model(x) - y) ** 2).mean().backward()
        (update.step if update else optimizer.step)()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(SETTINGS))
def test_the_direct_update_is_torch_optims_fused_step_bit_for_bit(name: str, device: str) -> None:
    ours, theirs = _model(device), _model(device)
    ours_opt = build_optimizer(ours.parameters(), SETTINGS[name])
    theirs_opt = build_optimizer(theirs.parameters(), SETTINGS[name])
    assert ours_opt.defaults["fused"] is True  # sweeplab's default on the CPU and on CUDA
    update = Update(ours_opt)
    assert update.kernel is not None
    lr_after = {5: 3e-3, 12: 1e-3}
    _train(ours, ours_opt, update, range(20), lr_after)
    _train(theirs, theirs_opt, None, range(20), lr_after)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    ours_state, theirs_state = ours_opt.state_dict(), theirs_opt.state_dict()
    for i, s in theirs_state["state"].items():
        assert set(ours_state["state"][i]) == set(s)
        for key, value in s.items():
            assert torch.equal(ours_state["state"][i][key], value), key


def test_a_run_resumed_from_its_state_dict_ends_as_the_uninterrupted_one() -> None:
    settings = SETTINGS["adam_decay"]
    whole = _model()
    whole_opt = build_optimizer(whole.parameters(), settings)
    _train(whole, whole_opt, Update(whole_opt), range(20), {})

    first = _model()
    first_opt = build_optimizer(first.parameters(), settings)
    _train(first, first_opt, Update(first_opt), range(8), {})
    saved = copy.deepcopy((first.state_dict(), first_opt.state_dict()))
    assert saved[1]["state"][0]["step"].item() == 8.0
    resumed = _model()
    resumed.load_state_dict(saved[0])
    resumed_opt = build_optimizer(resumed.parameters(), settings)
    resumed_opt.load_state_dict(saved[1])
    _train(resumed, resumed_opt, Update(resumed_opt), range(8, 20), {})
    for a, b in zip(resumed.parameters(), whole.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_parameter_without_a_gradient_is_left_alone_as_torch_does() -> None:
    ours, theirs = _model(), _model()
    for model in (ours, theirs):
        model[0].bias.requires_grad_(False)
    ours_opt = build_optimizer(ours.parameters(), SETTINGS["adam"])
    theirs_opt = build_optimizer(theirs.parameters(), SETTINGS["adam"])
    _train(ours, ours_opt, Update(ours_opt), range(5), {})
    _train(theirs, theirs_opt, None, range(5), {})
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(ours[0].bias, _model()[0].bias)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: torch.optim.Adam(ps, lr=1e-2),  # torch's own default: not fused
        lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True, fused=True),
    ],
    ids=["sgd", "adam_unfused", "adam_amsgrad"],
)
def test_other_optimizers_step_through_torch_optim(make) -> None:
    ours, theirs = _model(), _model()
    ours_opt, theirs_opt = make(ours.parameters()), make(theirs.parameters())
    update = Update(ours_opt)
    assert update.kernel is None
    _train(ours, ours_opt, update, range(5), {})
    _train(theirs, theirs_opt, None, range(5), {})
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_scaled_step_goes_through_torch_optim() -> None:
    optimizer = build_optimizer(_model().parameters(), SETTINGS["adam"])
    assert Update(optimizer, scaled=True).kernel is None


def test_the_fused_kernel_is_asked_for_only_where_torch_has_one() -> None:
    assert fusable([torch.zeros(2)]) is True
    assert fusable([torch.zeros(2, dtype=torch.complex64)]) is None
    assert fusable([torch.zeros(2, device="meta")]) is None
    assert fusable([]) is None
