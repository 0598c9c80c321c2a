"""Packed trials: the packed update matches torch.optim, and K packed members end as K single runs."""

import copy
import json
import logging
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

import sweeplab.train.fit as packed_loop
from sweeplab.packed import NotPackable, packable_keys, train_pack
from sweeplab.packed.layers import PackedModel
from sweeplab.packed.optim import PackedOptimizer
from sweeplab.stopping import Interrupted
from sweeplab.train import train

OPTIMIZERS = [
    (
        torch.optim.SGD,
        [
            dict(lr=0.1, momentum=0.9),
            dict(lr=0.05, momentum=0.5, weight_decay=0.01),
            dict(lr=0.2, momentum=0.0),
        ],
    ),
    (
        torch.optim.SGD,
        [dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.03, momentum=0.7, nesterov=True)],
    ),
    (torch.optim.Adam, [dict(lr=1e-3), dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)]),
    (torch.optim.AdamW, [dict(lr=1e-3, weight_decay=0.1), dict(lr=2e-3, betas=(0.5, 0.9))]),
    # torch's fused kernel (sweeplab's default for Adam and AdamW): the packed update is the same, bit for bit
    (
        torch.optim.Adam,
        [dict(lr=1e-3, fused=True), dict(lr=3e-3, betas=(0.8, 0.99), weight_decay=1e-2, fused=True)],
    ),
    (
        torch.optim.AdamW,
        [dict(lr=1e-3, weight_decay=0.1, fused=True), dict(lr=2e-3, betas=(0.5, 0.9), fused=True)],
    ),
    (torch.optim.RMSprop, [dict(lr=1e-3, alpha=0.9), dict(lr=1e-2, momentum=0.5, weight_decay=1e-3)]),
    (torch.optim.RMSprop, [dict(lr=1e-3, centered=True), dict(lr=5e-3, centered=True, momentum=0.9)]),
]


@pytest.mark.parametrize(("kind", "settings"), OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_packed_update_matches_torch_optim(kind: type, settings: list[dict]) -> None:
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)) for _ in settings]
    alone = [kind(m.parameters(), **s) for m, s in zip(models, settings, strict=True)]
    packed_model = PackedModel([_copy(m) for m in models], [torch.Generator() for _ in models])
    holders = [kind(_copy(m).parameters(), **s) for m, s in zip(models, settings, strict=True)]
    names = [n for n, _ in models[0].named_parameters()]
    packed = PackedOptimizer(packed_model.flat, packed_model.layout, holders)
    for _ in range(6):
        grads = {n: torch.randn(len(models), *p.shape) for n, p in models[0].named_parameters()}
        for k, (m, opt) in enumerate(zip(models, alone, strict=True)):
            for n, p in m.named_parameters():
                p.grad = grads[n][k].clone()
            opt.step()
        packed_model.flat.grad = torch.cat([grads[n].flatten(1) for n in names], 1)
        packed.step()
    assert (packed.kernel is not None) == any(s.get("fused") for s in settings)
    exact = packed.kernel is not None
    for k, m in enumerate(models):
        for n, p in m.named_parameters():
            if exact:
                assert torch.equal(packed_model.tensors[n][k], p.detach()), n
            else:
                torch.testing.assert_close(packed_model.tensors[n][k], p.detach(), rtol=1e-5, atol=1e-6)


def test_members_state_goes_to_torch_format_and_back() -> None:
    torch.manual_seed(0)
    models = [nn.Linear(3, 2) for _ in range(2)]
    holders = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in models]
    packed_model = PackedModel(models, [torch.Generator() for _ in models])
    packed = PackedOptimizer(packed_model.flat, packed_model.layout, holders)
    packed_model.flat.grad = torch.ones_like(packed_model.flat)
    packed.step()
    packed.to_member(1, models[1])
    saved = holders[1].state_dict()
    assert saved["state"][0]["step"].item() == 1.0
    assert saved["state"][0]["exp_avg"].shape == (2, 3)
    fresh = PackedOptimizer(packed_model.flat, packed_model.layout, holders)
    holders[1].load_state_dict(saved)
    fresh.from_member(1, models[1])
    torch.testing.assert_close(fresh.state["exp_avg"][1], packed.state["exp_avg"][1])
    assert fresh.steps == 1


def _copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def test_packable_keys_come_from_the_registries(make_cfg) -> None:
    keys = packable_keys(make_cfg("optimizer=sgd", "scheduler=step", "model.dropout=0.1"))
    assert {"trainer.seed", "optimizer.lr", "optimizer.momentum", "scheduler.gamma", "model.dropout"} <= keys
    assert "loss.label_smoothing" in keys
    assert not keys & {
        "model.hidden",
        "model.norm",
        "model.activation",
        "optimizer.nesterov",
        "trainer.batch_size",
    }
    assert "optimizer.betas" in packable_keys(make_cfg("optimizer=adam"))
    assert "model.dropout" not in packable_keys(make_cfg("model=torchvision"))


# Four members differing in seed and packable values, against the same four runs alone.
CASES = {
    # A linear layer's bias before batch norm has a zero gradient in exact arithmetic: Adam divides the
    # float noise left of it by its own size, so with eps 1e-8 the bias takes full-sized random steps that
    # differ with any summation order (the running mean follows them into the validation loss, 1e-4
    # apart). A larger eps keeps that noise noise; the training itself is compared as before.
    "mlp_batchnorm_dropout_adam_step": (
        [
            "model.norm=batch",
            "model.hidden=[32,32]",
            "scheduler=step",
            "scheduler.step_size=0.5",
            "optimizer.eps=1e-6",
        ],
        ["model.dropout={d}", "optimizer.lr={lr}", "loss.label_smoothing={ls}"],
    ),
    "cnn_sgd_momentum_plateau": (
        [
            "model=cnn",
            "model.channels=[4,8]",
            "model.hidden=[16]",
            "optimizer=sgd",
            "scheduler=plateau",
            "scheduler.patience=0",
            "model.norm=batch",
        ],
        ["optimizer.lr={lr}", "optimizer.momentum={m}", "scheduler.factor={f}"],
    ),
    "preact_resnet_sgd_exponential": (
        [
            "model=preact_resnet",
            "model.width=4",
            "model.stages=2",
            "model.blocks_per_stage=1",
            "optimizer=sgd",
            "scheduler=exponential",
            "scheduler.gamma=0.5",
        ],
        ["optimizer.lr={lr}", "optimizer.momentum={m}", "model.dropout={d}"],
    ),
    "mlp_layernorm_adamw_cosine": (
        [
            "model.norm=layer",
            "model.hidden=[24]",
            "optimizer=adamw",
            "scheduler=cosine",
            "scheduler.warmup_steps=5",
        ],
        ["optimizer.lr={lr}", "optimizer.weight_decay={wd}", "model.dropout={d}"],
    ),
}
VALUES = [
    dict(d=0.0, lr=1e-3, ls=0.0, m=0.9, f=0.5, wd=0.01),
    dict(d=0.2, lr=3e-3, ls=0.1, m=0.5, f=0.2, wd=0.0),
    dict(d=0.1, lr=2e-3, ls=0.0, m=0.0, f=0.5, wd=0.1),
    dict(d=0.3, lr=5e-4, ls=0.2, m=0.8, f=0.7, wd=0.05),
]


@pytest.mark.parametrize("case", CASES)
def test_packed_members_end_as_single_runs(case: str, make_cfg, tmp_path: Path) -> None:
    shared, varied = CASES[case]
    budget = ["trainer.max_steps=60", "trainer.eval_every=20", "trainer.batch_size=32"]
    cfgs = [
        make_cfg(*budget, *shared, f"trainer.seed={seed}", *(o.format(**VALUES[seed]) for o in varied))
        for seed in range(4)
    ]
    alone = [train(c, tmp_path / "alone" / str(i)) for i, c in enumerate(cfgs)]
    packed = train_pack(cfgs, [tmp_path / "packed" / str(i) for i in range(4)], [None] * 4)
    for i, (a, p) in enumerate(zip(alone, packed, strict=True)):
        assert p.metrics["pack_size"] == 4 and p.metrics["packed_with"] == [
            str(j) for j in range(4) if j != i
        ]
        assert len(a.history) == len(p.history) == 3
        for row_a, row_p in zip(a.history, p.history, strict=True):
            for key in ("train_loss", "val_loss", "lr"):
                assert row_p[key] == pytest.approx(row_a[key], rel=1e-4, abs=1e-5), (i, key)
            for key in ("train_acc", "val_acc"):  # an argmax on the edge may flip: 2 samples at most
                assert row_p[key] == pytest.approx(row_a[key], abs=2 / 400), (i, key)
        assert p.metrics["best_step"] == a.metrics["best_step"]
        # float reassociation may flip the argmax of a test sample on the edge: 2 in 1000 at most
        assert p.metrics["test_acc"] == pytest.approx(a.metrics["test_acc"], abs=2e-3)
        best_a = torch.load(tmp_path / "alone" / str(i) / "best.pt", weights_only=False)["model"]
        best_p = torch.load(tmp_path / "packed" / str(i) / "best.pt", weights_only=False)["model"]
        assert best_a.keys() == best_p.keys()
        # Grouped convolutions sum in another order, and batch norm amplifies that in some members: the
        # ResNet's weights differ by 4e-9 after one step, 1e-5 after 20, 1e-4 after 60 (histories agree)
        rtol = 1e-2 if "cnn" in case or "resnet" in case else 1e-4
        for name in best_a.keys() - _before_batch_norm(best_a):
            torch.testing.assert_close(
                best_p[name], best_a[name], rtol=rtol, atol=rtol / 10, msg=lambda m, name=name: f"{name}: {m}"
            )
        summary = json.loads((tmp_path / "packed" / str(i) / "summary.json").read_text())
        assert summary["pack_size"] == 4


def _before_batch_norm(state: dict) -> set[str]:
    """Biases that feed a batch norm: it subtracts them, so their gradient is zero up to rounding, which
    Adam scales to full steps. They (and the running mean that holds them) differ between runs that
    round differently, and change no output."""
    norms = [int(n.split(".")[0]) for n in state if n.endswith("running_mean")]
    return {f"{i - 1}.bias" for i in norms} | {f"{i}.running_mean" for i in norms}


def test_a_model_the_packing_cannot_handle_runs_alone(make_cfg, caplog) -> None:
    caplog.set_level(logging.INFO)
    cfgs = [make_cfg("+optimizer.amsgrad=true", f"trainer.seed={s}") for s in (0, 1)]
    results = train_pack(cfgs, [None, None], [None, None], labels=["3", "4"])
    assert [r.status for r in results] == ["completed", "completed"]
    assert "trials 3, 4 run one at a time, not packed: Adam with amsgrad cannot be packed yet" in caplog.text


def test_not_packable_names_the_layer() -> None:
    class Odd(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotPackable, match="Odd layers"):
        PackedModel([nn.Sequential(Odd()), nn.Sequential(Odd())], [torch.Generator()] * 2)


def _mlp_cfgs(make_cfg, n: int, *extra: str) -> list:
    budget = ["trainer.max_steps=60", "trainer.eval_every=20", "model.dropout=0.1"]
    return [
        make_cfg(*budget, f"trainer.seed={s}", f"optimizer.lr={1e-3 * (s + 1)}", *extra) for s in range(n)
    ]


def test_a_diverging_member_stops_alone(make_cfg) -> None:
    cfgs = _mlp_cfgs(make_cfg, 3, "optimizer=sgd")
    cfgs[1] = make_cfg(
        "trainer.max_steps=60",
        "trainer.eval_every=20",
        "model.dropout=0.1",
        "trainer.seed=1",
        "optimizer=sgd",
        "optimizer.lr=1e30",
    )
    packed = train_pack(cfgs, [None] * 3, [None] * 3)
    assert [r.status for r in packed] == ["completed", "diverged", "completed"]
    assert packed[1].metrics["steps"] == 20 and packed[2].metrics["steps"] == 60
    alone = train(cfgs[2])
    assert [r["val_loss"] for r in packed[2].history] == pytest.approx(
        [r["val_loss"] for r in alone.history], rel=1e-4
    )


def test_an_interrupted_pack_resumes_where_it_was(make_cfg, tmp_path: Path) -> None:
    cfgs = _mlp_cfgs(make_cfg, 3, "model.norm=batch")
    whole = train_pack(cfgs, [tmp_path / "whole" / str(i) for i in range(3)], [None] * 3)

    class Stop(Exception):
        pass

    def interrupt(step: int, row: dict) -> bool:
        if step == 40:
            raise Stop
        return False

    dirs = [tmp_path / "cut" / str(i) for i in range(3)]
    every_evaluation = [cfg.copy() for cfg in cfgs]
    for cfg in every_evaluation:
        cfg.trainer.checkpoint_every = 0  # where the machine runs: not part of what it computes
    with pytest.raises(Stop):
        train_pack(every_evaluation, dirs, [interrupt, None, None])
    assert all((d / "resume.pt").is_file() for d in dirs)
    resumed = train_pack(cfgs, dirs, [None] * 3)
    for a, b in zip(whole, resumed, strict=True):
        assert [r["val_loss"] for r in b.history] == pytest.approx(
            [r["val_loss"] for r in a.history], rel=1e-6
        )
        assert b.metrics["test_acc"] == a.metrics["test_acc"]
    assert not any((d / "resume.pt").exists() for d in dirs)


@pytest.mark.parametrize("at", [30, 40])  # between two evaluations, and right after one
def test_a_pack_stopped_by_a_signal_saves_every_member_at_that_step_and_resumes(
    make_cfg, tmp_path: Path, monkeypatch, at: int
) -> None:
    """With the default `trainer.checkpoint_every` (a minute) these 60 steps write no checkpoint of their
    own: the signal's is the one each member resumes from, with the numbers of the uninterrupted pack."""
    cfgs = _mlp_cfgs(make_cfg, 3, "model.norm=batch")
    whole = train_pack(cfgs, [tmp_path / "whole" / str(i) for i in range(3)], [None] * 3)
    calls = {"n": 0}

    def stop_at(real=packed_loop.stop_asked):  # a signal arrives during step `at`
        calls["n"] += 1
        return signal.SIGTERM if calls["n"] == at + 1 else real()

    monkeypatch.setattr(packed_loop, "stop_asked", stop_at)
    dirs = [tmp_path / "cut" / str(i) for i in range(3)]
    with pytest.raises(Interrupted):
        train_pack(cfgs, dirs, [None] * 3)
    assert [torch.load(d / "resume.pt", weights_only=False)["step"] for d in dirs] == [at] * 3
    monkeypatch.undo()
    resumed = train_pack(cfgs, dirs, [None] * 3)
    for a, b in zip(whole, resumed, strict=True):
        assert [r["val_loss"] for r in b.history] == pytest.approx(
            [r["val_loss"] for r in a.history], rel=1e-6
        )
        assert [r["train_loss"] for r in b.history] == pytest.approx(
            [r["train_loss"] for r in a.history], rel=1e-6
        )
        assert b.metrics["test_acc"] == a.metrics["test_acc"]
    assert not any((d / "resume.pt").exists() for d in dirs)


def test_a_pack_that_does_not_fit_is_split(make_cfg, monkeypatch, caplog) -> None:
    """A pack of 4 that runs out of memory trains as two packs of 2 (CUDA's OOM, raised here on CPU)."""
    import sweeplab.packed.run as run

    real = run.fit_pack

    def fits_two(pack, first):
        if len(pack) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(pack, first)

    monkeypatch.setattr(run, "fit_pack", fits_two)
    caplog.set_level(logging.INFO)
    results = train_pack(_mlp_cfgs(make_cfg, 4), [None] * 4, [None] * 4, labels=["a", "b", "c", "d"])
    assert [r.metrics["pack_size"] for r in results] == [2, 2, 2, 2]
    assert [r.metrics["packed_with"] for r in results] == [["b"], ["a"], ["d"], ["c"]]
    assert "a pack of 4 did not fit in memory: trained as packs of 2 and 2" in caplog.text


def test_a_pruned_member_stops_alone_and_the_others_go_on(make_cfg) -> None:
    cfgs = _mlp_cfgs(make_cfg, 3)
    seen: list[int] = []

    def prune_at_40(step: int, row: dict) -> bool:
        seen.append(step)
        return step == 40

    packed = train_pack(cfgs, [None] * 3, [None, prune_at_40, None])
    assert [r.status for r in packed] == ["completed", "pruned", "completed"]
    assert seen == [20, 40] and packed[1].metrics["steps"] == 40 and len(packed[1].history) == 2
    assert packed[0].metrics["steps"] == packed[2].metrics["steps"] == 60


def test_members_whose_runs_had_ended_keep_their_records_and_the_others_train(make_cfg, tmp_path, caplog):
    cfgs = [make_cfg(f"optimizer.lr={lr}", "trainer.max_steps=40") for lr in (1e-3, 3e-3, 1e-2)]
    dirs = [tmp_path / str(i) for i in range(3)]
    ended = train_pack(cfgs[:2], dirs[:2], [None, None])  # members 0 and 1 ended before
    before = [(d / "history.csv").read_text() for d in dirs[:2]]
    with caplog.at_level("INFO"):
        again = train_pack(cfgs, dirs, [None] * 3)
    assert [r.metrics["val_acc"] for r in again[:2]] == [r.metrics["val_acc"] for r in ended]
    assert [(d / "history.csv").read_text() for d in dirs[:2]] == before  # not trained again
    assert again[2].status == "completed" and len(again[2].history) == 4
    assert sum("its records are used, not trained again" in r.message for r in caplog.records) == 2
