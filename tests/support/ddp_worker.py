"""One rank of a two-process run of the fast recipe and the collectives (`python -m support.ddp_worker DATA OUT`).

DATA: an .npz of TrainData arrays (x_train, y_train, x_val, y_val); OUT: the folder where this rank writes
rank<N>.json (what it saw) and where rank 0 checkpoints. Started by tests/test_train_distributed.py with the
variables torchrun sets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from picsift.config import TrainConfig
from picsift.distributed import is_relayed, process_group
from picsift.errors import ConfigError
from picsift.models.registry import get_spec
from picsift.train.data import TrainData
from picsift.train.fast import fit_fast


def main(data_path: str, out_dir: str) -> None:
    arrays = np.load(data_path)
    out = Path(out_dir)
    spec = get_spec("fastcnn")
    data = TrainData(
        classes=["0", "1", "2"],
        data_config=spec.data_config.with_size(16),
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_val=arrays["x_val"],
        y_val=arrays["y_val"],
    )
    rows: list[dict[str, object]] = []
    with process_group("cpu") as dist:
        report: dict[str, object] = {"rank": dist.rank, "world_size": dist.world_size, "backend": dist.backend}
        report["max_rank"] = dist.agree_max(float(dist.rank))
        report["sum"] = dist.sum([1.0, float(dist.rank)])
        report["shard"] = list(range(5))[dist.shard()]
        report["shared"] = dist.share(lambda: {"decided_by": dist.rank})

        def refuse() -> None:
            raise ConfigError("rank 0 refused")

        try:
            dist.share(refuse)
        except ConfigError as e:
            report["error"] = {"message": str(e), "relayed": is_relayed(e)}
        cfg = TrainConfig(seed=0, device="cpu", epochs=15)
        trained = fit_fast(spec, data, cfg, torch.device("cpu"), rows.append, out, dist=dist)
        weights = torch.cat([p.detach().flatten().double() for p in trained.model.parameters()])
        buffers = torch.cat([b.flatten().double() for b in trained.model.buffers() if b.is_floating_point()])
        report["weights_sum"] = float(weights.sum())
        report["weights_abs_sum"] = float(weights.abs().sum())
        report["buffers_sum"] = float(buffers.sum())
        report["history"] = rows
        report["extra"] = {k: trained.extra.get(k) for k in ("batch_size", "global_batch_size", "steps")}
    (out / f"rank{report['rank']}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
