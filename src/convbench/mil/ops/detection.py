"""Non-maximum suppression (iOS15 and iOS17 tensor_operation.py)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import scalar


def _iou(box, others):
    """IoU of one (x, y, w, h) centre-size box with each of `others`."""
    def corners(b):
        return b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2, \
            b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2
    ax0, ay0, ax1, ay1 = corners(box)
    bx0, by0, bx1, by1 = corners(others)
    w = (torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp(min=0)
    h = (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp(min=0)
    inter = w * h
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return inter / union.clamp(min=1e-12)


def select(boxes, scores, iou, threshold, max_boxes, per_class) -> list[int]:
    """Greedy NMS of one batch item: boxes [B, 4], scores [B, K] -> kept box indices, best
    first. A box's score is its best class's; per class, a box suppresses only boxes whose
    best class is the same."""
    best, cls = scores.max(dim=-1)
    order = [int(i) for i in torch.argsort(best, descending=True, stable=True)
             if best[i] >= threshold]
    kept: list[int] = []
    for i in order:
        if len(kept) == max_boxes:
            break
        rivals = [k for k in kept if not per_class or cls[k] == cls[i]]
        if rivals and bool((_iou(boxes[i], boxes[rivals]) > iou).any()):
            continue
        kept.append(i)
    return kept


@op("non_maximum_suppression")
def non_maximum_suppression(boxes, scores, iou_threshold, max_boxes, per_class_suppression,
                            score_threshold=None):
    """iOS15 (boxes [n, B, 4], scores [n, B, K], a score threshold): selected boxes, scores,
    indices and counts, padded to max_boxes with zeros and index -1. iOS17 (boxes
    [n, 4, B], scores [n, K, B]): the same three outputs in that layout, no counts."""
    ios17 = score_threshold is None
    if ios17:
        boxes, scores = boxes.transpose(1, 2), scores.transpose(1, 2)
    m = int(scalar(max_boxes))
    threshold = float("-inf") if ios17 else float(scalar(score_threshold))
    n, _, k = scores.shape
    out_boxes = boxes.new_zeros((n, m, 4))
    out_scores = scores.new_zeros((n, m, k))
    out_idx = torch.full((n, m), -1, dtype=torch.int32)
    counts = torch.zeros(n, dtype=torch.int32)
    for b in range(n):
        kept = select(boxes[b], scores[b], float(scalar(iou_threshold)), threshold, m,
                       bool(scalar(per_class_suppression)))
        counts[b] = len(kept)
        if kept:
            out_boxes[b, :len(kept)] = boxes[b, kept]
            out_scores[b, :len(kept)] = scores[b, kept]
            out_idx[b, :len(kept)] = torch.tensor(kept, dtype=torch.int32)
    if ios17:
        return out_boxes.transpose(1, 2), out_scores.transpose(1, 2), out_idx
    return out_boxes, out_scores, out_idx, counts
