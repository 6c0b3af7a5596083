"""Transformer building blocks beyond matmul and softmax (iOS18 transformers.py)."""

from __future__ import annotations

import math

import torch

from convbench.mil.ops import op


@op("scaled_dot_product_attention")
def scaled_dot_product_attention(query, key, value, attn_mask=None):
    """softmax(Q K^T / sqrt(E) + mask) V; a bool mask keeps the scores where it is True (the
    others take -inf), a float mask is added to the scores."""
    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    return torch.matmul(torch.softmax(scores, dim=-1), value)
