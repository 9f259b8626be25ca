"""Sparse-query study: conditional flow matching from 5% of a 32x32 field's pixels."""
