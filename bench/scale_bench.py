"""Scaling past one machine, one part per concern; each part prints a table and writes
bench/results/scale_bench_<part>.json.

    python bench/scale_bench.py --part catalog [--quick]

Parts:
  catalog  The catalog on SQLite (the workspace's file) against PostgreSQL: `picsift import` of CIFAR-10 training
           JPEGs (50,000; --quick 2,000) with the database's share timed apart, then 8 labelling clients (separate
           processes, as 8 label-app servers would be) relabelling a shared set of images for a fixed time, each
           write checked against the version it read: writes/s, conflicts, errors.
           PostgreSQL: $PICSIFT_POSTGRES_URL (a user that may create databases), else a throwaway local cluster
           (initdb/pg_ctl, durable settings); the part says so and runs SQLite only when there is neither.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "cifar10" / "train"
RESULTS = REPO / "bench" / "results"

# ---- part: catalog ------------------------------------------------------------------------------------------


def make_subset(dest: Path, n: int) -> Path:
    """Symlinks to the first n/10 images of each CIFAR-10 class (folder per class)."""
    per_class = max(1, n // 10)
    for c in sorted(os.listdir(DATA)):
        (dest / c).mkdir(parents=True)
        for f in sorted(os.listdir(DATA / c))[:per_class]:
            (dest / c / f).symlink_to(DATA / c / f)
    return dest


def timed_import(folder: Path, workspace: Path, catalog: str | None) -> dict[str, Any]:
    """`picsift init` + `picsift import` of `folder`; wall seconds, images/s, and the seconds spent writing the
    catalog (write_import: the part the database decides)."""
    import picsift.ingest as ingest
    from picsift import api

    api.init_workspace(workspace=workspace, catalog=catalog)
    spent: list[float] = []
    original = ingest.write_import

    def timed(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kw)
        finally:
            spent.append(time.perf_counter() - start)

    ingest.write_import = timed  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        result = api.import_images(folder, workspace=workspace)
        wall = time.perf_counter() - start
    finally:
        ingest.write_import = original  # type: ignore[assignment]
    again = time.perf_counter()
    repeat = api.import_images(folder, workspace=workspace)
    return {
        "images": result.added,
        "wall_s": round(wall, 2),
        "images_per_s": round(result.added / wall, 1),
        "catalog_write_s": round(sum(spent), 2),
        "catalog_rows_per_s": round(result.added / sum(spent), 1),
        "reimport_s": round(time.perf_counter() - again, 2),
        "reimport_already_present": repeat.already_present,
    }


def labelling_client(args: tuple[str, str | None, list[int], float, int]) -> dict[str, int]:
    """One labelling client: for `seconds`, read an image's version, relabel it expecting that version (what the
    label app does per click). Returns {"writes", "conflicts", "errors"}."""
    root, catalog, ids, seconds, seed = args
    from picsift.label.edits import set_labels
    from picsift.store import Workspace

    rng = random.Random(seed)
    ws = Workspace.open(root, db_url=catalog)
    counts = {"writes": 0, "conflicts": 0, "errors": 0}
    try:
        ws.catalog.count()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            image_id = rng.choice(ids)
            try:
                version = ws.catalog.image(image_id).label_version
                out = set_labels(
                    ws.catalog,
                    [image_id],
                    f"class{rng.randrange(10)}",
                    annotator=f"client{seed}",
                    expected_versions={image_id: version},
                )
                counts["writes"] += len(out.applied)
                counts["conflicts"] += len(out.conflicts)
            except Exception:  # noqa: BLE001 - a client that errs is counted, as a user would see it
                counts["errors"] += 1
    finally:
        ws.close()
    return counts


def concurrent_labelling(workspace: Path, catalog: str | None, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` processes labelling the first 500 images for `seconds`; totals and writes/s, and a check that the
    catalog holds exactly the acknowledged writes (label events of origin manual)."""
    from sqlalchemy import func, select

    from picsift.store import Workspace
    from picsift.store.schema import LabelEvent

    ws = Workspace.open(workspace, db_url=catalog)
    ids = [r.id for r in ws.catalog.images()][:500]
    ws.close()
    jobs = [(str(workspace), catalog, ids, seconds, seed) for seed in range(clients)]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(clients) as pool:
        per_client = pool.map(labelling_client, jobs)
    wall = time.perf_counter() - start
    totals = {k: sum(c[k] for c in per_client) for k in ("writes", "conflicts", "errors")}
    ws = Workspace.open(workspace, db_url=catalog)
    with ws.catalog.session() as s:
        stored = s.scalar(select(func.count(LabelEvent.id)).where(LabelEvent.origin == "manual"))
    ws.close()
    return {
        "clients": clients,
        "seconds": seconds,
        **totals,
        "writes_per_s": round(totals["writes"] / seconds, 1),
        "stored_label_events": int(stored or 0),
        "all_acknowledged_writes_stored": int(stored or 0) == totals["writes"],
        "wall_s": round(wall, 2),
    }


def postgres_database(stack: ExitStack) -> tuple[str | None, str]:
    """A fresh PostgreSQL database URL for one backend run, and where the server came from."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.postgres import URL_ENV, fresh_database, start_cluster

    given = os.environ.get(URL_ENV)
    if given:
        return stack.enter_context(fresh_database(given)), f"${URL_ENV}"
    cluster = start_cluster(durable=True)
    if cluster is None:
        return None, "no PostgreSQL server (initdb not found, $PICSIFT_POSTGRES_URL unset)"
    stack.callback(cluster.stop)
    return stack.enter_context(fresh_database(cluster.url)), "throwaway local cluster (durable settings)"


def part_catalog(quick: bool) -> dict[str, Any]:
    """SQLite against PostgreSQL: import throughput and concurrent labelling (see the module docstring)."""
    from sqlalchemy import create_engine, text

    n = 2000 if quick else 50_000
    seconds = 5.0 if quick else 20.0
    out: dict[str, Any] = {"images": n, "label_seconds": seconds, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp, ExitStack() as stack:
        folder = make_subset(Path(tmp) / "cifar", n)
        pg_url, pg_source = postgres_database(stack)
        out["postgres_source"] = pg_source
        backends: list[tuple[str, str | None]] = [("sqlite", None)]
        if pg_url is not None:
            engine = create_engine(pg_url)
            with engine.connect() as c:
                out["postgres_version"] = c.execute(text("SHOW server_version")).scalar()
            engine.dispose()
            backends.append(("postgresql", pg_url))
        for name, url in backends:
            ws = Path(tmp) / f"ws-{name}"
            print(f"[catalog] {name}: importing {n} images ...", file=sys.stderr, flush=True)
            result = {"import": timed_import(folder, ws, url)}
            print(f"[catalog] {name}: 8 labelling clients for {seconds:.0f}s ...", file=sys.stderr, flush=True)
            result["labelling"] = concurrent_labelling(ws, url, clients=8, seconds=seconds)
            out["backends"][name] = result
    return out


def print_catalog(out: dict[str, Any]) -> None:
    print(f"catalog: {out['images']} CIFAR-10 images; PostgreSQL: {out['postgres_source']}")
    head = (
        f"{'backend':<11} {'import s':>9} {'img/s':>8} {'db write s':>10} {'rows/s':>9} {'re-import s':>11} "
        f"{'label w/s':>9} {'conflicts':>9} {'errors':>6} {'all stored':>10}"
    )
    print(head)
    print("-" * len(head))
    for name, r in out["backends"].items():
        i, lab = r["import"], r["labelling"]
        print(
            f"{name:<11} {i['wall_s']:>9.1f} {i['images_per_s']:>8.0f} {i['catalog_write_s']:>10.2f} "
            f"{i['catalog_rows_per_s']:>9.0f} {i['reimport_s']:>11.2f} {lab['writes_per_s']:>9.1f} "
            f"{lab['conflicts']:>9} {lab['errors']:>6} {str(lab['all_acknowledged_writes_stored']):>10}"
        )


# ---- driver -------------------------------------------------------------------------------------------------

PARTS: dict[str, tuple[Callable[[bool], dict[str, Any]], Callable[[dict[str, Any]], None]]] = {
    "catalog": (part_catalog, print_catalog),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=sorted(PARTS) + ["all"], default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not a measurement)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from benchutil import machine_info, results_path
    from picsift.jsonio import write_json

    RESULTS.mkdir(exist_ok=True)
    for name in sorted(PARTS) if args.part == "all" else [args.part]:
        run, show = PARTS[name]
        out = {"part": name, "quick": args.quick, "machine": machine_info(), **run(args.quick)}
        show(out)
        write_json(results_path(f"scale_bench_{name}", args.quick), out, indent=2)


if __name__ == "__main__":
    main()
