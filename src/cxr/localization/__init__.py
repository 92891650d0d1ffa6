"""Localization: Grad-CAM of classifiers (gradcam), a map model's image score (map_scores),
heatmap peaks to scored points (peaks), map-model targets from the outlines (targets), a
blend's FROC from the saved maps (evaluation), maps to boxes and gated masks
(regions), a box or mask submission with its post-processing chosen on OOF (objects), and the
fold models' boxes fused (box_fusion)."""
