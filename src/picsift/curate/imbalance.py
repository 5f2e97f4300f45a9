"""Class balance: tiny classes and the ratio between the largest and smallest class, with a remedy."""

from __future__ import annotations

from collections.abc import Mapping

from picsift.curate.findings import Finding


def find_imbalance(counts: Mapping[str, int], *, tiny: int = 10, max_ratio: float = 5.0) -> list[Finding]:
    """`counts`: labelled training images per class. Image ids are empty: these concern whole classes."""
    findings: list[Finding] = []
    if not counts:
        return findings
    for cls, n in sorted(counts.items(), key=lambda kv: kv[1]):
        if n < tiny:
            findings.append(
                Finding(
                    "tiny_class",
                    (),
                    float(tiny / max(n, 1)),
                    f"class {cls!r} has only {n} labelled image(s) (< {tiny}): collect or label more, "
                    "or merge it into a related class",
                    {"class": cls, "count": n},
                )
            )
    largest = max(counts.items(), key=lambda kv: kv[1])
    smallest = min(counts.items(), key=lambda kv: kv[1])
    ratio = largest[1] / max(smallest[1], 1)
    if len(counts) > 1 and ratio > max_ratio:
        remedy = (
            "train with --balance sampler (class-balanced batches)"
            if ratio > 20
            else "train with --balance weights (class-weighted loss)"
        )
        findings.append(
            Finding(
                "class_imbalance",
                (),
                float(ratio),
                f"imbalanced: {largest[0]!r} has {largest[1]} images, {smallest[0]!r} {smallest[1]} "
                f"({ratio:.1f}x); {remedy}, and judge by balanced accuracy",
                {"counts": dict(counts), "ratio": round(ratio, 2), "remedy": remedy},
            )
        )
    return findings
