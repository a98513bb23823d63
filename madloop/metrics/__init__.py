"""Metrics of a generation against the truth or a held-out real set, as the groups of ``table.GROUPS``."""

from madloop.metrics.distances import (
    JACOBI_MAX_DIM,
    class_columns,
    class_stats,
    frechet_distance,
    gaussian_kl,
    kth_neighbour_distance,
    kth_smallest,
    mode_stats,
    pairwise_distances,
    prdc,
    rbf_mean,
    sliced_w2,
    sort_floats,
)
from madloop.metrics.evaluate import (
    Reference,
    available,
    check,
    evaluate_params,
    evaluate_samples,
    group_of,
    is_sample_metric,
    make_reference,
    needs_classifier,
    needs_samples,
    select,
    selected_groups,
)
from madloop.metrics.group import Columns, Context, MetricGroup
from madloop.metrics.table import GROUPS

ALL_METRICS = tuple(name for group in GROUPS for name in group.names)  # every fixed name (class_c columns aside)

__all__ = [
    "ALL_METRICS",
    "GROUPS",
    "JACOBI_MAX_DIM",
    "Columns",
    "Context",
    "MetricGroup",
    "Reference",
    "available",
    "check",
    "class_columns",
    "class_stats",
    "evaluate_params",
    "evaluate_samples",
    "frechet_distance",
    "gaussian_kl",
    "group_of",
    "is_sample_metric",
    "kth_neighbour_distance",
    "kth_smallest",
    "make_reference",
    "mode_stats",
    "needs_classifier",
    "needs_samples",
    "pairwise_distances",
    "prdc",
    "rbf_mean",
    "select",
    "selected_groups",
    "sliced_w2",
    "sort_floats",
]
