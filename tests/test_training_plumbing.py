"""The plumbing the three training loops share: LR schedule, optimizer step, checkpoint layout."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reconlab.checkpoint import (
    checkpoint_path,
    discard_checkpoint,
    load_checkpoint,
    resume_training,
    save_training,
)
from reconlab.optim import lr_factor, optimizer_step, set_lr, warmup_steps


def test_lr_warmup_then_cosine():
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup, 0.1) for s in range(total + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.55)
    assert factors[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))


def test_lr_without_warmup_is_the_plain_cosine_the_loops_used_before():
    # tokenizer: cosine to 10 % over all steps (bit for bit); sparse: cosine to 0, which it wrote
    # as cos(pi * s / n) (the argument rounds differently: equal to the last bit or two)
    for s in range(0, 301, 7):
        old = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / 300, 1.0)))
        assert lr_factor(s, 300, 0, 0.1) == old
        old = 0.5 * (1 + math.cos(math.pi * s / 300))
        assert lr_factor(s, 300, 0, 0.0) == pytest.approx(old, rel=1e-15, abs=1e-15)
    assert warmup_steps(0.05, 30) == 2 and warmup_steps(0.0, 30) == 0


def _model_and_opt(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def test_optimizer_step_clips_the_global_gradient_norm():
    model, _ = _model_and_opt()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    before = [p.detach().clone() for p in model.parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: the update is lr * gradient
    set_lr(sgd, 1.0)
    loss = 100 * model(torch.ones(2, 4)).sum()
    optimizer_step(loss, sgd, scaler, max_norm=1.0)
    after = model.parameters()
    update = torch.cat([(b - a.detach()).flatten() for b, a in zip(before, after, strict=True)])
    assert update.norm().item() == pytest.approx(1.0, rel=1e-5)  # unclipped it is ~ 400
    assert all(p.grad is None for p in model.parameters())  # cleared for the next step


def test_checkpoint_has_one_layout_and_restores_every_piece(tmp_path):
    path = checkpoint_path(tmp_path / "out")
    assert path == tmp_path / "out" / ".ckpt" / "last.pt"
    model, opt = _model_and_opt()
    ema = nn.Linear(4, 3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        optimizer_step(model(torch.randn(2, 4, generator=gen)).pow(2).sum(), opt, scaler, 1.0)
    save_training(path, {"lr": 1}, 3, model, opt, scaler, ema, {"batches": gen}, rows=[1, 2])
    expected_next = torch.randn(3, generator=gen)

    state = load_checkpoint(path, {"lr": 1})
    assert set(state) == {"config", "model", "optimizer", "scaler", "ema", "step", "loop"}

    model2, opt2 = _model_and_opt(seed=1)
    ema2, gen2 = nn.Linear(4, 3), torch.Generator()
    step, loop = resume_training(path, {"lr": 1}, model2, opt2, scaler, ema2, {"batches": gen2})
    assert step == 3 and loop == {"rows": [1, 2]}
    assert torch.equal(torch.randn(3, generator=gen2), expected_next)
    for a, b in [(model, model2), (ema, ema2)]:
        assert all(
            torch.equal(x, y)
            for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        )
    assert torch.equal(
        opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"]
    )

    other, _ = _model_and_opt(seed=2)
    assert resume_training(path, {"lr": 2}, other, opt2, scaler) == (0, {})  # other params
    discard_checkpoint(path)
    assert not path.parent.exists() and (tmp_path / "out").is_dir()


def test_a_corrupt_checkpoint_is_reported_once_and_training_starts_over(tmp_path, caplog):
    path = checkpoint_path(tmp_path / "out")
    model, opt = _model_and_opt()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_training(path, {"lr": 1}, 3, model, opt, scaler)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    caplog.clear()
    assert resume_training(path, {"lr": 1}, model, opt, scaler) == (0, {})
    assert [(r.name, r.levelname) for r in caplog.records] == [("reconlab.checkpoint", "WARNING")]
    message = caplog.records[0].getMessage()
    assert message.startswith(f"{path}: corrupt checkpoint (")
    assert message.endswith("); not used, training starts over")
