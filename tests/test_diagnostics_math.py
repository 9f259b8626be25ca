"""Diagnostics math on constructed inputs with known answers (no cache, no model)."""

from __future__ import annotations

import math

import pytest
import torch

from reconlab.diagnostics.grid import common_grid, resample_grid
from reconlab.diagnostics.pca import fit_pca, fix_signs, pca_maps, project
from reconlab.diagnostics.reference import reference_cell, reference_maps
from reconlab.diagnostics.retrieval import (
    background_directions,
    remove_directions,
    retrieval_metrics,
)
from reconlab.diagnostics.smoothness import neighbour_similarity, smoothness_per_image


def rotating_grid(h: int, w: int, theta: float, dim: int = 5) -> torch.Tensor:
    """Patch (i, j) = unit vector at angle j*theta in the first two dims: horizontal neighbours
    have cosine cos(theta), vertical neighbours cosine 1."""
    angle = torch.arange(w, dtype=torch.float64) * theta
    grid = torch.zeros(1, h, w, dim, dtype=torch.float64)
    grid[..., 0] = torch.cos(angle)
    grid[..., 1] = torch.sin(angle)
    return grid * 3.0  # norms do not matter for a cosine


def expected_rotating_smoothness(h: int, w: int, theta: float) -> float:
    c = math.cos(theta)
    total = 0.0
    for i in range(h):
        for j in range(w):
            sims = []
            sims += [c] * ((j > 0) + (j < w - 1))
            sims += [1.0] * ((i > 0) + (i < h - 1))
            total += sum(sims) / len(sims)
    return total / (h * w)


def test_smoothness_of_a_constant_grid_is_one():
    grid = torch.randn(1, 1, 1, 8).expand(2, 4, 5, 8)
    sim = neighbour_similarity(grid)
    assert sim.shape == (2, 4, 5)
    torch.testing.assert_close(sim, torch.ones(2, 4, 5))


def test_smoothness_of_a_checkerboard_is_minus_one():
    v = torch.randn(6)
    sign = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2 - 1  # +-1 checkerboard
    grid = (sign[..., None] * v)[None]
    torch.testing.assert_close(smoothness_per_image(grid), torch.tensor([-1.0]))


@pytest.mark.parametrize("h,w,theta", [(3, 4, math.pi / 2), (5, 5, 0.3), (2, 7, 2.0)])
def test_smoothness_matches_the_closed_form_on_a_rotating_grid(h, w, theta):
    grid = rotating_grid(h, w, theta)
    got = smoothness_per_image(grid)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected_rotating_smoothness(h, w, theta), abs=1e-6)
    # Interior patches: (2 cos(theta) + 2) / 4 exactly.
    interior = neighbour_similarity(grid)[0, 1:-1, 1:-1]
    if interior.numel():
        expect = (2 * math.cos(theta) + 2) / 4
        torch.testing.assert_close(interior, torch.full_like(interior, expect))


def test_smoothness_rejects_a_flat_tensor():
    with pytest.raises(ValueError, match=r"\(N, h, w, D\)"):
        neighbour_similarity(torch.zeros(4, 8))


def structured_points(seed: int = 0, n: int = 400, d: int = 6) -> torch.Tensor:
    """Skewed, anisotropic data: every component has a clearly non-zero third moment."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.3, 0.2])[:d]
    z = -torch.log(torch.rand(n, d, generator=g)) * scales  # exponential: skewed
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    return z @ rot.T


def test_pca_signs_do_not_depend_on_row_order_or_solver_sign():
    x = structured_points()
    basis = fit_pca(x, k=3)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
    again = fit_pca(x[perm], k=3)
    torch.testing.assert_close(basis.components, again.components, atol=1e-5, rtol=0)
    # Whatever sign a solver returns, fixing gives the same orientation.
    centred = (x - x.mean(0)).double()
    flipped = basis.components.double() * torch.tensor([-1.0, 1.0, -1.0])[:, None]
    torch.testing.assert_close(fix_signs(flipped, centred).float(), basis.components)
    # The rule: positive skewness of every component's scores.
    scores = project(x, basis)
    assert (scores.pow(3).mean(0) > 0).all()
    # Rows orthonormal, explained variance sorted.
    torch.testing.assert_close(
        basis.components @ basis.components.T, torch.eye(3), atol=1e-5, rtol=0
    )
    assert (basis.explained_variance_ratio.diff() <= 0).all()


def test_pca_signs_are_stable_between_subsets_of_images():
    # Two disjoint halves of the same distribution: same orientation (no flicker between images).
    x = structured_points(n=2000)
    a, b = fit_pca(x[:1000], k=2), fit_pca(x[1000:], k=2)
    cos = (a.components * b.components).sum(1)
    assert (cos > 0.9).all(), cos


def test_symmetric_scores_fall_back_to_the_largest_loading():
    # A symmetric cloud: skewness 0, so the largest-|loading| entry must come out positive.
    x = torch.tensor([[2.0, 0.1], [-2.0, -0.1], [0.5, -1.0], [-0.5, 1.0]])
    comps = fit_pca(x, k=2).components
    top = comps.gather(1, comps.abs().argmax(1, keepdim=True))
    assert (top > 0).all()


def test_pca_maps_shapes_foreground_and_joint_colours():
    # Two images: a "background" vector everywhere and an "object" block in the middle.
    g = torch.Generator().manual_seed(0)
    bg, obj = torch.randn(8, generator=g), torch.randn(8, generator=g) * 3
    grid = bg.repeat(2, 6, 6, 1) + 0.01 * torch.randn(2, 6, 6, 8, generator=g)
    grid[:, 2:4, 2:4] += obj
    maps = pca_maps(grid)
    assert maps.rgb.shape == (2, 6, 6, 3) and maps.foreground_rgb.shape == (2, 6, 6, 3)
    assert 0 <= maps.rgb.min() and maps.rgb.max() <= 1
    # The minority object is the positive tail of the first component: the foreground.
    expect = torch.zeros(2, 6, 6, dtype=torch.bool)
    expect[:, 2:4, 2:4] = True
    assert torch.equal(maps.foreground, expect)
    assert (maps.foreground_rgb[~expect] == 0).all()
    # Joint basis: the object gets the same first-component colour in both images (the other
    # two components only see the noise here), at the top of the scale.
    torch.testing.assert_close(
        maps.rgb[0, 2:4, 2:4, 0], maps.rgb[1, 2:4, 2:4, 0], atol=0.02, rtol=0
    )
    assert maps.rgb[:, 2:4, 2:4, 0].min() > 0.95 and maps.rgb[~expect][:, 0].max() < 0.05


def test_reference_cell_and_maps():
    assert reference_cell((16, 16), (0.5, 0.5)) == (8, 8)
    assert reference_cell((14, 14), (0.5, 0.5)) == (7, 7)
    assert reference_cell((4, 6), (1.0, 1.0)) == (3, 5)
    with pytest.raises(ValueError, match="diagnostics.reference_point"):
        reference_cell((4, 4), (1.5, 0.5))
    grid = torch.randn(3, 4, 5, 7)
    grid[2, 0, 0] = -2 * grid[1, 2, 3]
    maps = reference_maps(grid, image=1, cell=(2, 3))
    assert maps.shape == (3, 4, 5)
    assert maps[1, 2, 3].item() == pytest.approx(1.0, abs=1e-6)
    assert maps[2, 0, 0].item() == pytest.approx(-1.0, abs=1e-6)
    assert maps.abs().max() <= 1 + 1e-6


def labelled_set():
    """Three sources with two items each; 'a' items are near each other, 'b' and 'c' collide."""
    e = torch.tensor(
        [
            [1.0, 0.0, 0.0],  # a
            [0.9, 0.1, 0.0],  # a
            [0.0, 1.0, 0.0],  # b
            [0.0, 0.8, 0.6],  # c  (closer to b0 than to c1)
            [0.0, 0.0, 1.0],  # c
            [0.0, 0.6, 0.8],  # b  (closer to c1 than to b0)
        ]
    )
    return e, ["a", "a", "b", "c", "c", "b"]


def test_recall_and_map_on_a_constructed_retrieval_set():
    e, labels = labelled_set()
    r = retrieval_metrics(e, labels, ks=(1, 2, 5))
    assert r.queries == 6 and r.skipped == 0
    # Reference answers by brute force over the similarity matrix.
    sims = torch.nn.functional.normalize(e, dim=1) @ torch.nn.functional.normalize(e, dim=1).T
    sims.fill_diagonal_(-2)
    first = sims.argmax(1)
    expect_r1 = sum(labels[int(first[i])] == labels[i] for i in range(6)) / 6
    assert r.recall[1] == pytest.approx(expect_r1)
    assert r.recall[5] == pytest.approx(1.0)
    # AP per query with one relevant item is 1 / rank of that item.
    order = torch.argsort(sims, dim=1, descending=True)
    aps = []
    for i in range(6):
        ranked = [labels[int(j)] for j in order[i] if int(j) != i]
        aps.append(1.0 / (ranked.index(labels[i]) + 1))
    assert r.mean_average_precision == pytest.approx(sum(aps) / 6)
    assert r.recall[1] == pytest.approx(2 / 6)  # only the two 'a' queries are right at rank 1


def test_retrieval_metrics_equal_hand_computed_values():
    # Unit vectors at 0, 10, 20 and 90 degrees; labels a, b, a, a. Rankings by angle:
    #   q0 (a): 1, 2, 3 -> relevant [0, 1, 1]: hit@1 0, AP (1/2 + 2/3) / 2 = 7/12
    #   q1 (b): nothing else is b -> skipped
    #   q2 (a): 1, 0, 3 -> relevant [0, 1, 1]: hit@1 0, AP 7/12
    #   q3 (a): 2, 1, 0 -> relevant [1, 0, 1]: hit@1 1, AP (1 + 2/3) / 2 = 5/6
    angles = torch.deg2rad(torch.tensor([0.0, 10.0, 20.0, 90.0]))
    e = torch.stack([angles.cos(), angles.sin()], 1)
    r = retrieval_metrics(e, ["a", "b", "a", "a"], ks=(1, 2))
    assert (r.queries, r.skipped) == (3, 1)
    assert r.recall[1] == pytest.approx(1 / 3) and r.recall[2] == pytest.approx(1.0)
    # recall@k is a relevant item in the top k (hit rate): q3 counts 1 at k=1, not 1/2
    assert r.mean_average_precision == pytest.approx((7 / 12 + 7 / 12 + 5 / 6) / 3)


def test_perfect_and_unlabelled_retrieval():
    e = torch.eye(4).repeat_interleave(2, 0) + 0.01 * torch.randn(8, 4)
    labels = [str(i // 2) for i in range(8)]
    r = retrieval_metrics(e, labels)
    assert r.recall == {1: 1.0, 5: 1.0} and r.mean_average_precision == pytest.approx(1.0)
    single = retrieval_metrics(e[:3], ["x", "y", "z"])
    assert single.queries == 0 and single.skipped == 3 and math.isnan(single.recall[1])
    with pytest.raises(ValueError, match="labels"):
        retrieval_metrics(e, labels[:3])


def test_removing_a_shared_direction_restores_retrieval():
    # A strong shared component drowns the per-source signal; removing it fixes the ranking.
    g = torch.Generator().manual_seed(0)
    signal = torch.eye(6)[:, :6].repeat_interleave(2, 0) * 0.2  # 6 sources x 2 items
    shared = torch.zeros(12, 6)
    # Large, varies across items, and puts the two items of a source far apart.
    shared[:, 0] = 10 * torch.tensor([(i % 2) * 6 + i // 2 + 1.0 for i in range(12)])
    e = torch.cat([signal, torch.zeros(12, 1)], 1)
    e[:, 6] = shared[:, 0]
    e = e + 0.001 * torch.randn(12, 7, generator=g)
    labels = [str(i // 2) for i in range(12)]
    before = retrieval_metrics(e, labels)
    dirs = background_directions(e, 1)
    assert dirs.shape == (1, 7)
    assert abs(dirs[0, 6]) > 0.99
    after = retrieval_metrics(remove_directions(e, dirs), labels)
    assert before.recall[1] < 0.7 and before.mean_average_precision < 0.8
    assert after.recall[1] == 1.0 and after.mean_average_precision == pytest.approx(1.0)
    assert torch.equal(remove_directions(e, torch.zeros(0, 7)), e)


def test_common_grid_and_resampling():
    assert common_grid([16, 16], [14, 14]) == [14, 14]
    assert common_grid([4, 4], [4, 4]) == [4, 4]
    assert common_grid([16, 16], [14, 14], grid=[8, 8]) == [8, 8]
    x = torch.randn(2, 16, 16, 3)
    assert resample_grid(x, (16, 16)) is not None and torch.equal(resample_grid(x, (16, 16)), x)
    y = resample_grid(x, (14, 14))
    assert y.shape == (2, 14, 14, 3)
    const = torch.ones(1, 16, 16, 3) * torch.tensor([1.0, -2.0, 3.0])
    torch.testing.assert_close(
        resample_grid(const, (7, 9)), torch.ones(1, 7, 9, 3) * torch.tensor([1.0, -2.0, 3.0])
    )
