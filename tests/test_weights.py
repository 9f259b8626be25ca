"""The one weights loader: file round trips per network kind, seeded random, clear errors.

Every weights file here is made by the test from a seeded random initialisation (no download).
"""

from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from reconlab.weights import (
    create_timm_model,
    create_torchvision_model,
    file_identity,
    inception_weights_file,
    load_state_dict,
    torchvision_weights_as_pretrained,
    unwrap_state_dict,
)

DINOV2 = "vit_small_patch14_dinov2.lvd142m"
TINY = {"depth": 2, "img_size": 28}


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unwrap_state_dict_takes_the_tensors_out_of_any_wrapper():
    t = torch.ones(2)
    assert unwrap_state_dict({"w": t, "step": 3}) == {"w": t}
    assert unwrap_state_dict({"state_dict": {"module": {"w": t}}, "epoch": 1}) == {"w": t}
    assert unwrap_state_dict({"model": {"w": t}}) == {"w": t}
    assert unwrap_state_dict([t]) == {}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".ckpt"])
def test_timm_file_round_trip_in_every_format(tmp_path, suffix):
    ref, rid = create_timm_model(DINOV2, "random", "k", seed=1, **TINY)
    assert rid == "random:1"
    path = tmp_path / f"dino{suffix}"
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:  # .ckpt: wrapped as a training script saves it
        torch.save({"state_dict": state, "step": 7} if suffix == ".ckpt" else state, path)
    loaded, identity = create_timm_model(DINOV2, str(path), "k", **TINY)
    assert identity == file_identity(path) and identity.startswith("sha256:")
    assert same_state(ref, loaded)


def test_torchvision_file_round_trip_and_seeded_random(tmp_path):
    a, aid = create_torchvision_model("alexnet", "random", "k", seed=3)
    b, _ = create_torchvision_model("alexnet", "random", "k", seed=3)
    c, _ = create_torchvision_model("alexnet", "random", "k", seed=4)
    assert aid == "random:3" and same_state(a, b) and not same_state(a, c)
    path = tmp_path / "alexnet.pth"
    torch.save({"model": a.state_dict()}, path)
    loaded, identity = create_torchvision_model("alexnet", str(path), "k")
    assert identity == file_identity(path) and same_state(a, loaded)
    with pytest.raises(ValueError, match=r"^k: .*alexnet.pth does not fit SqueezeNet: tensor '"):
        create_torchvision_model("squeezenet1_1", str(path), "k")


def test_lpips_backbone_round_trips_through_torchmetrics_public_metric(tmp_path):
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    ref, _ = create_torchvision_model("squeezenet1_1", "random", "k", seed=5)
    path = tmp_path / "squeeze.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    hub_dir = torch.hub.get_dir()
    with torchvision_weights_as_pretrained("squeezenet1_1", str(path), "k") as identity:
        metric = LearnedPerceptualImagePatchSimilarity("squeeze")
    assert identity == file_identity(path) and torch.hub.get_dir() == hub_dir
    got = metric.net.net.state_dict()  # LPIPS keeps torchvision's layer indices in its slices
    for name, value in ref.features.state_dict().items():
        match = [v for k, v in got.items() if k.endswith(f".{name}")]
        assert len(match) == 1 and torch.equal(match[0], value), name


@pytest.mark.slow
def test_inception_for_fid_round_trips_through_torchmetrics(tmp_path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    path, identity = inception_weights_file("random", tmp_path, "k", seed=2)
    again, _ = inception_weights_file("random", tmp_path / "b", "k", seed=2)
    assert identity == "random:2"
    first, second = load_state_dict(path, "k"), load_state_dict(again, "k")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    wrapped = tmp_path / "wrapped.ckpt"
    torch.save({"state_dict": first}, wrapped)
    plain, file_id = inception_weights_file(str(wrapped), tmp_path, "k")
    assert file_id == file_identity(wrapped) and plain != wrapped  # rewritten unwrapped
    fid = FrechetInceptionDistance(feature=64, feature_extractor_weights_path=str(plain))
    for name, value in fid.inception.state_dict().items():
        assert torch.equal(value, first[name]), name


@pytest.mark.parametrize(
    "load",
    [
        lambda p: create_timm_model(DINOV2, p, "net.weights", **TINY),
        lambda p: create_torchvision_model("alexnet", p, "net.weights"),
        lambda p: inception_weights_file(p, "/tmp", "net.weights"),
        lambda p: torchvision_weights_as_pretrained("alexnet", p, "net.weights").__enter__(),
    ],
    ids=["timm", "torchvision", "inception", "lpips"],
)
def test_a_missing_file_is_named_in_one_line(tmp_path, load):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError) as e:
        load(str(missing))
    assert str(e.value).startswith(f"net.weights: '{missing}' is neither")
    assert "\n" not in str(e.value)


def test_a_file_that_is_not_weights_is_named(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=rf"^k: {junk} is not a torch state dict \("):
        load_state_dict(junk, "k")
    torch.save({"step": 1}, tmp_path / "empty.pth")
    with pytest.raises(ValueError, match="no tensors in it"):
        load_state_dict(tmp_path / "empty.pth", "k")


def test_pretrained_offline_fails_fast_without_touching_sockets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch.hub cache
    before = socket.getdefaulttimeout()
    with pytest.raises(RuntimeError) as e:
        create_torchvision_model("alexnet", "pretrained", "tokenizer.perceptual.weights")
    msg = str(e.value)
    assert msg.startswith("tokenizer.perceptual.weights: 'pretrained' needs alexnet-owt-")
    assert "'random'" in msg and "local checkpoint file" in msg and "\n" not in msg
    with pytest.raises(RuntimeError, match="needs weights-inception-2015-12-05"):
        inception_weights_file("pretrained", tmp_path, "k")
    assert socket.getdefaulttimeout() == before
