"""Fuzzing at scale: every parser's Hypothesis strategy (tests/support/fuzz.py) with many more inputs than
`make test` runs, and the corrupt-image corpus (tests/support/corrupt.py) through a real import and predict.
Failures are counted, not raised: the table shows inputs tried, valid results, typed refusals, crashes (target 0)
and refusals whose message does not say where (target 0).

    python bench/fuzz_bench.py [--quick] [--examples N] [--seed S]

Writes bench/results/fuzz_bench.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from benchutil import machine_info, results_path  # noqa: E402
from picsift.jsonio import write_json  # noqa: E402
from support.fuzz import TARGETS, fuzz  # noqa: E402

# Faults this fuzzing found and fixed in picsift (each has a test in tests/test_fuzz_regressions.py).
FIXED = {
    "URL list": ["`http://[::1` (an unclosed IPv6 host): ValueError from urlsplit; now 'line N: not an http(s) URL'"],
    "label file (JSON)": [
        "lists nested 100000 deep: RecursionError; now DatasetError",
        "an integer of 5000 digits: ValueError; now DatasetError",
        "an `http://[::1` image reference: ValueError from urlsplit; now kept as a path",
    ],
    "label file (LS/COCO shapes)": [
        "COCO categories/images/annotations, Label Studio data/annotations/result, picsift images of the wrong "
        "JSON type: TypeError or AttributeError; now DatasetError naming the item ('task 3 annotations item 1')",
        "a path or sha256 given as a number: kept as a number (TypeError when matched); now text",
    ],
    "YAML config (text)": [
        "a file that is not UTF-8: UnicodeDecodeError; now ConfigError",
        "YAML PyYAML fails on with ValueError, AttributeError or RecursionError: now ConfigError",
    ],
    "YAML config (settings)": [
        "a value of the wrong kind (`epochs: abc`, `top_k: 5`): TypeError in validate; now ConfigError naming "
        "file, line and setting",
        "`lr: .nan`, `seed: 1.5`, `workspace: 5`, `model_params: [1]`: silently kept; now ConfigError",
        "an out-of-range value from the file: the message named only the flag; now also the file and line",
    ],
    "--param": ["`a=!!int x`, `a=!!timestamp x`, `a=[[[...`, 5000 digits: ValueError/AttributeError/RecursionError"],
    "model_params": [
        "a whole number too large for a float (10**400): OverflowError; now ConfigError (fast CNN and transfer)",
        "transfer epochs/batch_size NaN or infinity: ValueError/OverflowError from int(); now ConfigError",
    ],
    "archive member names": [
        "a tar member name holding a NUL (PAX header): ValueError; now refused",
        "a file and a folder of one name (`a` and `a/b.png`, `CON` and `CON/x`): IsADirectoryError; now both extract",
        "a zip member whose name starts with NUL (read as ''): IndexError from ZipInfo.is_dir; now refused",
        "two members whose names read as one path (`a/./b`, `a\\\\b`, `a/b`): the first silently overwritten; now both kept",
    ],
    "corrupt images": [
        "a file with a format's signature but an unreadable header: 'not an image (unrecognised format)'; now "
        "'corrupt image: the data starts like PNG but its header cannot be read'",
        "Pillow's warnings on damaged EXIF/TIFF tags printed on stderr during `picsift import`; now silenced",
        "the server's top_k of 1e999 (infinity): OverflowError, a 500; now 422 invalid_top_k",
    ],
}


def run_parsers(examples: int, seed: int | None) -> list[dict[str, Any]]:
    rows = []
    for target in TARGETS:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = fuzz(target, examples, keep_going=True, seed=seed)
        rows.append(
            {
                "target": target.name,
                "input": target.kind,
                "tried": stats.tried,
                "valid": stats.valid,
                "refused": stats.refused,
                "crashes": len(stats.crashes),
                "unclear": len(stats.unclear),
                "fixed": FIXED.get(target.name, []),
                "crash_examples": stats.crashes[:5],
                "unclear_examples": stats.unclear[:5],
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        r = rows[-1]
        print(
            f"{r['target']:<32} {r['input']:<30} {r['tried']:>6} {r['valid']:>6} {r['refused']:>7} "
            f"{r['crashes']:>7} {r['unclear']:>7} {len(r['fixed']):>5} {r['seconds']:>6}",
            flush=True,
        )
        for line in r["crash_examples"] + r["unclear_examples"]:
            print(f"    {line[:300]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 inputs per parser (a smoke run)")
    ap.add_argument("--examples", type=int, default=None, help="inputs per parser (default 2000)")
    ap.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: derandomized)")
    ap.add_argument("--skip-images", action="store_true", help="parsers only, no corrupt-image corpus")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the refused archive members are logged as warnings: counted instead
    warnings.simplefilter("ignore")  # Pillow warns about the corrupt files it is fed
    examples = args.examples or (200 if args.quick else 2000)
    print(
        f"{'parser':<32} {'input':<30} {'tried':>6} {'valid':>6} {'refused':>7} {'crashes':>7} {'unclear':>7} "
        f"{'fixed':>5} {'s':>6}"
    )
    parsers = run_parsers(examples, args.seed)
    images: dict[str, Any] = {}
    if not args.skip_images:
        from support.corrupt import run_corpus_bench

        images = run_corpus_bench(print)
        images["fixed"] = FIXED["corrupt images"]
    out = results_path("fuzz_bench", args.quick)
    write_json(out, {"machine": machine_info(), "examples_per_parser": examples, "parsers": parsers, "images": images})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
