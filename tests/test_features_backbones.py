"""Backbones: weights policy, prefix tokens per family, rectangular grids, bad input.

Real timm DINOv2 / DINOv3 ViT-S architectures with random weights, cut to 2 blocks (``TINY``) so
each builds in a fraction of a second, at tiny rectangular sizes (a 2x3 patch grid).
"""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import save_file

from reconlab.features.backbones import check_model_name, load_backbone
from reconlab.features.extract import FeatureExtractor
from reconlab.features.fastpath import _fast_path_works
from reconlab.weights import hub_reachable

DINOV2 = "vit_small_patch14_dinov2.lvd142m"
DINOV2_REG = "vit_small_patch14_reg4_dinov2.lvd142m"
DINOV3 = "vit_small_patch16_dinov3.lvd1689m"
SIZES = {DINOV2: (28, 42), DINOV2_REG: (28, 42), DINOV3: (32, 48)}  # all a 2x3 grid
TINY = {"depth": 2}


def images(n=2, size=(28, 42), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, *size), generator=g, dtype=torch.uint8)


def features(backbone, x, precision="fp32"):
    return FeatureExtractor(backbone, "cpu", precision)(x)


def test_random_weights_are_seeded_and_marked_untrained():
    a = load_backbone(DINOV2, "random", (28, 42), seed=3, **TINY)
    b = load_backbone(DINOV2, "random", (28, 42), seed=3, **TINY)
    c = load_backbone(DINOV2, "random", (28, 42), seed=4, **TINY)
    assert a.weights_id == "random:3" and a.untrained
    x = images()
    fa, fb, fc = features(a, x), features(b, x), features(c, x)
    assert torch.equal(fa.patch, fb.patch) and torch.equal(fa.cls, fb.cls)
    assert not torch.allclose(fa.patch, fc.patch)
    assert torch.isfinite(fa.patch).all()


def test_weights_file_round_trip_gives_identical_features(tmp_path):
    ref = load_backbone(DINOV2_REG, "random", (28, 42), seed=0, **TINY)
    path = tmp_path / "reg4.safetensors"
    save_file({k: v.contiguous() for k, v in ref.model.state_dict().items()}, str(path))
    loaded = load_backbone(DINOV2_REG, str(path), (28, 42), **TINY)
    assert loaded.weights_id.startswith("sha256:") and len(loaded.weights_id) == 7 + 64
    assert not loaded.untrained and loaded.weights == str(path)
    x = images()
    f_ref, f_file = features(ref, x), features(loaded, x)
    assert torch.equal(f_ref.patch, f_file.patch) and torch.equal(f_ref.cls, f_file.cls)


def test_weights_file_of_another_architecture_names_the_tensor(tmp_path):
    path = tmp_path / "dinov2.safetensors"
    m = load_backbone(DINOV2, "random", (28, 42), **TINY).model
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    with pytest.raises(ValueError) as e:
        load_backbone(DINOV2_REG, str(path), (28, 42), key="features.backbones[1]", **TINY)
    msg = str(e.value)
    assert msg.startswith("features.backbones[1].weights:") and "'reg_token'" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match=r"does not fit .*dinov3.*: tensor '[\w.]+'"):
        load_backbone(DINOV3, str(path), (32, 48), **TINY)


def test_missing_weights_file_names_the_key():
    with pytest.raises(FileNotFoundError, match=r"k\.weights: '/nope.pt' is neither 'pretrained'"):
        load_backbone(DINOV2, "/nope.pt", 28, key="k", **TINY)


@pytest.mark.skipif(hub_reachable(), reason="the hub is reachable here; this tests offline")
def test_pretrained_without_network_fails_fast_naming_alternatives():
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError) as e:
        load_backbone(DINOV3, "pretrained", 32, key="features.backbones[2]", **TINY)
    elapsed = time.perf_counter() - t0
    msg = str(e.value)
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert msg.startswith("features.backbones[2].weights: 'pretrained' needs timm/")
    assert "local checkpoint file" in msg and "'random'" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("name", "prefix"), [(DINOV2, 1), (DINOV2_REG, 5), (DINOV3, 5)], ids=["v2", "v2reg", "v3"]
)
def test_prefix_tokens_come_from_the_model_and_grid_is_rectangular(name, prefix):
    bb = load_backbone(name, "random", SIZES[name], seed=0, **TINY)
    assert bb.num_prefix_tokens == prefix and bb.grid == (2, 3)
    x = images(size=SIZES[name])
    f = features(bb, x)
    assert f.patch.shape == (2, 2, 3, 384) and f.cls.shape == (2, 384)
    # Reference: timm's own split of prefix and patch tokens.
    xn = (x.float() / 255 - torch.tensor(bb.mean).view(1, 3, 1, 1)) / torch.tensor(bb.std).view(
        1, 3, 1, 1
    )
    with torch.inference_mode():
        tokens = bb.model.forward_features(xn)
        _, [(patch_nlc, prefix_tokens)] = bb.model.forward_intermediates(
            xn,
            indices=[len(bb.model.blocks) - 1],
            norm=True,
            output_fmt="NLC",
            return_prefix_tokens=True,
        )
    assert tokens.shape[1] == prefix + 6
    assert torch.allclose(f.cls, tokens[:, 0]) and torch.allclose(f.cls, prefix_tokens[:, 0])
    assert torch.allclose(f.patch.reshape(2, 6, 384), patch_nlc, atol=1e-5)
    # Row-major grid: token (i, j) is sequence position prefix + i * 3 + j.
    assert torch.equal(f.patch[:, 1, 2], tokens[:, prefix + 5])


def test_intermediate_layers_use_forward_intermediates():
    bb = load_backbone(DINOV3, "random", (32, 48), layers=[0, -1], **TINY)
    assert bb.layers == (0, 1)
    f = features(bb, images(size=(32, 48)))
    assert set(f.layers) == {0, 1} and f.layers[0].shape == (2, 2, 3, 384)
    assert torch.allclose(f.layers[1], f.patch, atol=1e-5)  # last block + final norm = output
    assert not torch.allclose(f.layers[0], f.patch)
    with pytest.raises(ValueError, match=r"layers: 2 is out of range .* \(2 blocks\)"):
        load_backbone(DINOV3, "random", 32, layers=[2], **TINY)


def test_bf16_stays_close_to_fp32_and_leaves_the_model_alone():
    bb = load_backbone(DINOV2, "random", (28, 42), **TINY)
    x = images(n=4)
    ref, fast = features(bb, x, "fp32").patch, features(bb, x, "bf16").patch.float()
    cos = torch.nn.functional.cosine_similarity(ref, fast, dim=-1)
    assert cos.mean() > 0.99
    assert next(bb.model.parameters()).dtype == torch.float32
    assert torch.equal(features(bb, x, "fp32").patch, ref)


def test_image_size_not_divisible_by_patch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"image_size: 64x64 is not divisible by the 14x14 "):
        load_backbone(DINOV2, "random", 64, key="b", **TINY)
    with pytest.raises(ValueError, match=r"use e\.g\. \[70, 70\]"):
        load_backbone(DINOV2, "random", 64, **TINY)


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ValueError, match=r"did you mean .*vit_small_patch14_dinov2"):
        check_model_name("vit_small_patch14_dinov", "features.backbones[0].model")
    check_model_name(DINOV3)  # a tagged name is fine


@pytest.mark.parametrize("name", [DINOV2, DINOV3], ids=["v2", "v3"])
def test_fast_path_computes_the_same_function(name):
    bb = load_backbone(name, "random", SIZES[name], **TINY)
    with torch.no_grad():  # trained-like LayerScale, so folding it matters
        for module in bb.model.modules():
            for attr in ("gamma", "gamma_1", "gamma_2"):
                gamma = getattr(module, attr, None)
                if isinstance(gamma, torch.nn.Parameter):
                    gamma.uniform_(0.1, 1.0)
    x = images(n=3, size=SIZES[name])
    ref = FeatureExtractor(bb, "cpu", "fp32", fast_path=False)(x)
    folded = FeatureExtractor(bb, "cpu", "fp32")(x)
    assert torch.allclose(folded.patch, ref.patch, atol=1e-4)
    assert torch.allclose(folded.cls, ref.cls, atol=1e-4)
    fast = FeatureExtractor(bb, "cpu", "bf16")
    # qkv, proj, fc1 (+GELU), fc2 per block where this CPU's oneDNN takes the prepacked bf16
    # path; none where it refuses it (AVX2-only CPUs), and then the model is left as it was
    assert fast.prepacked == (4 * TINY["depth"] if _fast_path_works() else 0)
    cos = torch.nn.functional.cosine_similarity(fast(x).patch.float(), ref.patch, dim=-1)
    assert cos.mean() > 0.999
    assert sum(isinstance(m, torch.nn.Linear) for m in bb.model.modules()) == 4 * TINY["depth"]


def test_pretrained_loads_from_the_hugging_face_cache_without_network(tmp_path, monkeypatch):
    """A hub cache filled beforehand (e.g. copied from a networked machine) is used offline."""
    source = load_backbone(DINOV3, "random", (32, 48), seed=5, **TINY)
    snapshot = tmp_path / "models--timm--vit_small_patch16_dinov3.lvd1689m" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    bb = load_backbone(DINOV3, "pretrained", (32, 48), **TINY)
    assert bb.weights_id == "hub:timm/vit_small_patch16_dinov3.lvd1689m@abc123"
    assert not bb.untrained
    x = images(size=(32, 48))
    assert torch.equal(features(bb, x).patch, features(source, x).patch)
