"""Codebook health on known assignments: usage, perplexity, dead codes; accumulation over batches."""

from __future__ import annotations

import math

import pytest
import torch

from reconlab.tokenizer.codebook import CodeCounter, codebook_health


def test_half_used_codebook_with_two_equal_codes():
    h = codebook_health(torch.bincount(torch.tensor([0, 0, 1, 1]), minlength=4))
    assert h["codebook_usage"] == pytest.approx(50.0)
    assert h["perplexity"] == pytest.approx(2.0)
    assert h["dead_codes"] == 2 and h["used_codes"] == 2 and h["tokens"] == 4


def test_uniform_use_gives_perplexity_k_and_one_code_gives_one():
    assert codebook_health(torch.full((16,), 5))["perplexity"] == pytest.approx(16.0)
    assert codebook_health(torch.full((16,), 5))["codebook_usage"] == pytest.approx(100.0)
    one = torch.zeros(16, dtype=torch.int64)
    one[3] = 100
    h = codebook_health(one)
    assert h["perplexity"] == pytest.approx(1.0) and h["dead_codes"] == 15


def test_skewed_assignment_perplexity_is_exp_entropy():
    counts = torch.tensor([3, 1, 0, 0])
    p = torch.tensor([0.75, 0.25])
    expected = math.exp(float(-(p * p.log()).sum()))
    assert codebook_health(counts)["perplexity"] == pytest.approx(expected)


def test_counter_accumulates_over_batches_not_one_batch():
    c = CodeCounter(8)
    c.update(torch.tensor([[0, 1], [2, 3]]))
    assert c.health()["codebook_usage"] == pytest.approx(50.0)
    c.update(torch.tensor([4, 5, 6, 7]))
    assert c.health()["codebook_usage"] == pytest.approx(100.0)
    assert c.health()["perplexity"] == pytest.approx(8.0)


def test_empty_and_out_of_range():
    h = CodeCounter(4).health()
    assert h["codebook_usage"] == 0.0 and h["dead_codes"] == 4 and math.isnan(h["perplexity"])
    with pytest.raises(ValueError, match="out of range"):
        CodeCounter(4).update(torch.tensor([4]))
