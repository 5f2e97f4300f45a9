"""Reading the HTML reports back in tests: a small standard-library parser into a flat list of elements."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import numpy as np
from PIL import Image

from picsift.cluster.report import THUMB_SOURCE, thumb_uri
from picsift.evaluate.metrics import wilson_interval

VOID = {"img", "br", "input", "meta", "link", "hr", "source", "col", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None = None
    children: list[Element] = field(default_factory=list)
    parts: list[str | Element] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        out = []
        for c in self.children:
            if (tag is None or c.tag == tag) and (cls is None or cls in c.classes()):
                out.append(c)
            out += c.find_all(tag, cls)
        return out

    def find(self, tag: str | None = None, cls: str | None = None) -> Element:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}> in <{self.tag}>"
        return found[0]

    def by_id(self, ident: str) -> Element:
        found = [e for e in self.find_all() if e.attrs.get("id") == ident]
        assert found, f"no element with id {ident!r}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(el)
        self.cur.parts.append(el)
        if tag not in VOID:
            self.cur = el

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.parts.append(data)


def parse_html(text: str) -> Element:
    b = _Builder()
    b.feed(text)
    b.close()
    return b.root


def data_uri_size(uri: str) -> tuple[int, int]:
    """(width, height) of the picture in a base64 data: URI."""
    head, _, payload = uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head[:40]
    with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
        return img.size


def cluster_summary(nmi: float, n: int = 300) -> tuple[dict[str, Any], list[dict[str, Any]], dict[int, str]]:
    rng = np.random.default_rng(0)
    ids = list(range(1, n + 1))
    cluster = [i % 3 for i in ids]
    clusters = [
        {"cluster": c, "size": cluster.count(c), "image_ids": [i for i, k in zip(ids, cluster, strict=True) if k == c],
         "labels": {"ants": 10, "bees": 9}}
        for c in range(3)
    ]  # fmt: skip
    summary = {
        "features": "hog", "method": "kmeans", "k": 3, "silhouette": 0.12, "n_images": n, "map_method": "tsne",
        "metrics": {"purity": 0.55, "nmi": nmi, "ari": 0.01, "n_labeled": n}, "clusters": clusters,
    }  # fmt: skip
    # A crowded map: many points on top of each other, as t-SNE gives for a weak extractor.
    xy = np.concatenate([rng.normal(0, 0.05, (n // 2, 2)), rng.normal(3, 1.0, (n - n // 2, 2))])
    points = [
        {"id": i, "x": float(x), "y": float(y), "cluster": k, "label": "ants" if i % 2 else "bees", "path": f"/p/{i}.jpg"}
        for i, (x, y), k in zip(ids, xy, cluster, strict=True)
    ]  # fmt: skip
    pixels = rng.integers(0, 255, (THUMB_SOURCE, THUMB_SOURCE, 3), dtype=np.uint8)
    uri = thumb_uri(pixels)
    return summary, points, {i: uri for i in ids}


COMPARE_N = 150


def leaderboard_row(name: str, right: set[int], **extra: Any) -> dict[str, Any]:
    correct = {i: i in right for i in range(COMPARE_N)}
    k = sum(correct.values())
    return {
        "candidate": name, "model": name.split(":")[0], "features": extra.pop("features", None),
        "run_id": f"compare-{name}-20261201-101010", "train_seconds": 12.5, "epochs": extra.pop("epochs", 1),
        "budget_min": extra.pop("budget_min", None), "split": "test", "n_eval": COMPARE_N, "accuracy": k / COMPARE_N,
        "accuracy_ci95": list(wilson_interval(k, COMPARE_N)), "majority_baseline": {"class": "bees", "accuracy": 0.54},
        "macro_f1": k / COMPARE_N, "predict_ms_per_image": 0.4, "model_bytes": 250_000, "_correct": correct,
    }  # fmt: skip
