"""Active learning on CIFAR-10: picsift's queue vs random selection at equal label counts.

Start from 20 labels per class (the same random 200 for every strategy), then add 200 labels per
round for 5 rounds; labels are revealed from the ground truth. After each round a logistic
regression is trained on fixed, unsupervised features (Coates & Ng 2011 style: whitened 6x6 patches,
k-means dictionary, soft-threshold code, quadrant pooling) and scored on the 10,000 test images.

Strategies (interleaved per round, same features, same classifier, same starting labels):
    random   uniform sample of the unlabelled pool
    queue    picsift.label.queue: margin uncertainty + diversity, with a cold-start share that grows with
             the labels per class (uncertainty_share: 0 at 20 per class, 1 at 100); the uncertainty part
             is weighted k-means on the top 3x, the rest k-means over the whole pool taking each
             cluster's most uncertain image (PCA-32 embeddings)
    margin   uncertainty alone (ablation: what the diversity term adds)

    python bench/active_learning.py            # 3 seeds, 10,000-image pool, ~5 minutes on 2 idle cores
    python bench/active_learning.py --quick    # under a minute
    python bench/active_learning.py --features pretrained --pool 3000 --test 2000
        # the same on the pretrained embedding the queue uses by default (EfficientNet-Lite0 when installed),
        # written to active_learning_pretrained.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from benchutil import results_path
from picsift.jsonio import write_json
from picsift.label.queue import select_batch, uncertainty, uncertainty_share

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "cifar10"
WORK = REPO / "bench" / "work"
STRATEGIES = ("random", "queue", "margin")


# ---- data ---------------------------------------------------------------------------------------
def load_cifar() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The JPEG CIFAR-10 as uint8 arrays, decoded once and cached in bench/work/."""
    cache = WORK / "active_learning-cifar10.npz"
    if cache.exists():
        d = np.load(cache)
        return d["x_train"], d["y_train"], d["x_test"], d["y_test"], [str(c) for c in d["classes"]]
    if not DATA.is_dir():
        raise SystemExit(f"CIFAR-10 not found at {DATA} (expected ../shared/datasets/cifar10)")
    from PIL import Image

    classes = sorted(p.name for p in (DATA / "train").iterdir() if p.is_dir())

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        files = [(f, i) for i, c in enumerate(classes) for f in sorted((DATA / name / c).glob("*.jpg"))]

        def decode(f: Path) -> np.ndarray:
            with Image.open(f) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)

        with ThreadPoolExecutor(4) as pool:
            x = np.stack(list(pool.map(decode, [f for f, _ in files])))
        return x, np.array([i for _, i in files], dtype=np.int64)

    xtr, ytr = split("train")
    xte, yte = split("test")
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, classes=np.array(classes))
    return xtr, ytr, xte, yte, classes


# ---- fixed unsupervised features ----------------------------------------------------------------
class PatchFeatures:
    """Whitened-patch k-means features (Coates & Ng 2011): uint8 (N, 32, 32, 3) -> float32 (N, 8K).

    Patches (6x6x3, stride 1) are contrast-normalised and ZCA-whitened; a k-means dictionary of K
    unit-norm centres is learnt on a sample; each patch is encoded by the soft-threshold code
    max(0, +-d.w - alpha), summed over the four image quadrants. All of it is linear up to the
    per-patch normalisation, so encoding runs as one convolution plus two box filters.
    """

    def __init__(self, k: int, patch: int = 6, seed: int = 0) -> None:
        self.k, self.patch, self.seed = k, patch, seed

    def fit(self, x: np.ndarray, n_patches: int = 30000) -> PatchFeatures:
        from sklearn.cluster import MiniBatchKMeans

        rng = np.random.default_rng(self.seed)
        q = self.patch
        idx = rng.integers(0, len(x), n_patches)
        rows, cols = rng.integers(0, 32 - q + 1, (2, n_patches))
        raw = np.stack([x[i, r : r + q, c : c + q] for i, r, c in zip(idx, rows, cols, strict=True)])
        p = torch.from_numpy(raw).permute(0, 3, 1, 2).reshape(n_patches, -1).double() / 255.0
        p = p - p.mean(dim=1, keepdim=True)
        p = p / torch.sqrt(p.var(dim=1, keepdim=True) + 0.01)
        mean = p.mean(0)
        e, v = torch.linalg.eigh(torch.cov((p - mean).T))
        zca = v @ torch.diag(1.0 / torch.sqrt(e + 0.1)) @ v.T
        w = ((p - mean) @ zca).float().numpy()
        km = MiniBatchKMeans(self.k, random_state=self.seed, n_init=1, batch_size=4096).fit(w)
        d = torch.from_numpy(km.cluster_centers_).double()
        d = d / d.norm(dim=1, keepdim=True)
        a = zca @ d.T  # (D, K): whitening folded into the filters
        self.filters = a.T.reshape(self.k, 3, q, q).float()
        self.sum_a = a.sum(0).float()
        self.mean_a = (mean @ a).float()
        self.alpha = float(torch.from_numpy(w).double().matmul(d.T).abs().mean())
        return self

    @torch.no_grad()
    def transform(self, x: np.ndarray, batch: int = 500) -> np.ndarray:
        q, n_el = self.patch, 3 * self.patch * self.patch
        box = torch.full((1, 3, q, q), 1.0 / n_el)
        out = []
        for i in range(0, len(x), batch):
            imgs = torch.from_numpy(x[i : i + batch]).permute(0, 3, 1, 2).float() / 255.0
            m = torch.nn.functional.conv2d(imgs, box)
            var = (torch.nn.functional.conv2d(imgs * imgs, box) - m * m) * n_el / (n_el - 1)
            dots = torch.nn.functional.conv2d(imgs, self.filters) - m * self.sum_a[None, :, None, None]
            z = dots / torch.sqrt(var.clamp_min(0) + 0.01) - self.mean_a[None, :, None, None]
            f = torch.cat([(z - self.alpha).clamp_min(0), (-z - self.alpha).clamp_min(0)], 1)
            side = f.shape[-1]
            h = (side + 1) // 2
            halves = (slice(0, h), slice(h, side))
            out.append(torch.cat([f[:, :, a, b].sum((2, 3)) for a in halves for b in halves], 1).numpy())
        return np.concatenate(out).astype(np.float32)


# ---- one active-learning run --------------------------------------------------------------------
def fit_predict(xtr: np.ndarray, ytr: np.ndarray, x_eval: list[np.ndarray]) -> list[np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=0.05, max_iter=300)
    clf.fit(xtr, ytr)
    return [clf.predict_proba(x) for x in x_eval]


def run_strategies(
    feats_pool: np.ndarray,
    y_pool: np.ndarray,
    feats_test: np.ndarray,
    y_test: np.ndarray,
    init_per_class: int,
    per_round: int,
    rounds: int,
    seed: int,
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    start = np.concatenate(
        [rng.choice(np.flatnonzero(y_pool == c), init_per_class, replace=False) for c in np.unique(y_pool)]
    )
    labelled = {s: start.copy() for s in STRATEGIES}
    acc: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    for r in range(rounds + 1):
        for s in STRATEGIES:  # interleaved: every strategy trains in every round before the next
            idx = labelled[s]
            p_pool, p_test = fit_predict(feats_pool[idx], y_pool[idx], [feats_pool, feats_test])
            acc[s].append(float((p_test.argmax(1) == y_test).mean()))
            if r == rounds:
                continue
            mask = np.ones(len(y_pool), dtype=bool)
            mask[idx] = False
            pool_idx = np.flatnonzero(mask)
            if s == "random":
                new = rng.choice(pool_idx, per_round, replace=False)
            else:
                scores = uncertainty(p_pool[pool_idx], "margin")
                emb = feats_pool[pool_idx] if s == "queue" else None
                share = uncertainty_share(len(idx), len(np.unique(y_pool))) if s == "queue" else 1.0
                new = pool_idx[select_batch(scores, emb, per_round, seed=seed + r, uncertainty_share=share)]
            labelled[s] = np.concatenate([idx, new])
    return acc


def machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    a = torch.randn(1024, 1024)
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    gflops = 10 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "matmul_fp32_gflops": round(gflops, 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small pool, 2 rounds, 1 seed (smoke test)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pool", type=int, default=10000, help="unlabelled pool drawn from the train split")
    ap.add_argument("--test", type=int, default=10000, help="test images scored (drawn from the test split)")
    ap.add_argument(
        "--features", choices=("patches", "pretrained"), default="patches",
        help="patches: whitened patch k-means (default); pretrained: picsift's default pretrained embedding",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.quick:
        pool_n, test_n, k, rounds, per_round, init, seeds = 2000, 1000, 32, 2, 100, 10, 1
    else:
        pool_n, test_n, k, rounds, per_round, init, seeds = args.pool, args.test, 100, 5, 200, 20, args.seeds
    info = machine()
    t0 = time.perf_counter()
    xtr, ytr, xte, yte, classes = load_cifar()
    rng = np.random.default_rng(12345)
    pool = rng.choice(len(xtr), pool_n, replace=False)
    test = rng.choice(len(xte), test_n, replace=False) if test_n < len(xte) else np.arange(len(xte))
    t_data = time.perf_counter() - t0
    features_text = f"whitened 6x6 patch k-means, K={k}, soft-threshold code, 4-quadrant sum pooling"
    cache = WORK / f"active_learning-features-{pool_n}-{test_n}-{k}.npz"
    if args.features == "pretrained":
        from picsift.features import default_embedding, extract_arrays

        choice = default_embedding()
        if not choice.pretrained:
            raise SystemExit(choice.text)
        features_text = choice.text
        cache = WORK / f"active_learning-{choice.extractor}-{pool_n}-{test_n}.npz"
    if cache.exists():  # the features are deterministic: reruns skip the expensive part
        d = np.load(cache)
        f_pool, f_test = d["pool"], d["test"]
    elif args.features == "pretrained":
        f_pool, f_test = extract_arrays(xtr[pool], choice.extractor), extract_arrays(xte[test], choice.extractor)
        np.savez(cache, pool=f_pool, test=f_test)
    else:
        feats = PatchFeatures(k).fit(xtr[pool], n_patches=10000 if args.quick else 30000)
        f_pool, f_test = feats.transform(xtr[pool]), feats.transform(xte[test])
        np.savez(cache, pool=f_pool, test=f_test)
    mu, sd = f_pool.mean(0), f_pool.std(0) + 1e-6
    f_pool, f_test = (f_pool - mu) / sd, (f_test - mu) / sd
    t_feat = time.perf_counter() - t0 - t_data
    y_pool, y_test = ytr[pool], yte[test]
    runs = []
    for seed in range(seeds):
        runs.append(run_strategies(f_pool, y_pool, f_test, y_test, init, per_round, rounds, seed))
    t_total = time.perf_counter() - t0
    counts = [init * len(classes) + per_round * r for r in range(rounds + 1)]
    table = []
    for r, n in enumerate(counts):
        row: dict[str, object] = {"labels": n}
        for s in STRATEGIES:
            vals = [run[s][r] for run in runs]
            row[s] = {"median": float(np.median(vals)), "min": float(min(vals)), "max": float(max(vals))}
        gains = [run["queue"][r] - run["random"][r] for run in runs]
        row["queue_minus_random"] = {
            "median": float(np.median(gains)),
            "min": float(min(gains)),
            "max": float(max(gains)),
        }
        row["queue_over_random"] = float(np.median([run["queue"][r] / run["random"][r] for run in runs]))
        table.append(row)
    later = [g for row in table[1:] for g in [row["queue_minus_random"]["median"]]]  # type: ignore[index]
    result = {
        "benchmark": "active_learning",
        "command": "python bench/active_learning.py"
        + (" --quick" if args.quick else "")
        + (f" --features pretrained --pool {pool_n} --test {test_n}" if args.features == "pretrained" else ""),
        "dataset": "CIFAR-10 JPEG copy (../shared/datasets/cifar10); accuracy on the test split",
        "setup": {
            "pool": pool_n,
            "test": int(len(test)),
            "init_per_class": init,
            "per_round": per_round,
            "rounds": rounds,
            "seeds": list(range(seeds)),
            "features": features_text,
            "classifier": "LogisticRegression(C=0.05)",
            "queue": "PCA-32 embeddings; uncertainty_share(labels) = clip((labels per class - 20) / 80, 0, 1) "
            "of the batch: margin uncertainty, top 3x prefilter, uncertainty-weighted k-means, nearest to each "
            "centre; the rest: k-means over the whole pool, most uncertain image per cluster",
        },
        "machine": info,
        "seconds": {"data": round(t_data, 1), "features": round(t_feat, 1), "total": round(t_total, 1)},
        "rounds": table,
        "runs": runs,
        "queue_beats_random_every_round_after_start": all(g > 0 for g in later),
    }
    out = results_path("active_learning_pretrained" if args.features == "pretrained" else "active_learning", args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result, indent=2)
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
        f"{info['matmul_fp32_gflops']} GFLOP/s fp32 matmul; {seeds} seed(s); {t_total:.0f}s total"
    )
    print(f"CIFAR-10 test accuracy (median over {seeds} seed(s), min-max), pool {pool_n}, features: {features_text}")
    print(f"{'labels':>6} | {'random':>19} | {'queue':>19} | {'margin only':>19} | {'queue-random':>12} | ratio")
    for row in table:

        def cell(s: str, row: dict = row) -> str:
            v = row[s]
            return f"{v['median']:.4f} ({v['min']:.3f}-{v['max']:.3f})"

        g = row["queue_minus_random"]
        print(
            f"{row['labels']:>6} | {cell('random'):>19} | {cell('queue'):>19} | {cell('margin'):>19} | "
            f"{g['median']:+12.4f} | {row['queue_over_random']:.3f}"
        )


if __name__ == "__main__":
    main()
