"""Property-based fuzzing of picsift's parsers: Hypothesis strategies of hostile input, one target per parser.

Each target feeds one generated input to a real parser (a file written to disk, then read the way `picsift`
reads it) and judges the outcome: a valid result, or a picsift typed error (`picsift.errors.PicsiftError`) whose
message names where (the file, or the flag) — anything else is a crash. `fuzz(target, examples)` runs a target
under Hypothesis and counts inputs, results, refusals and crashes; `tests/test_fuzz_parsers.py` runs every target
(failing on the first crash, which Hypothesis shrinks), `bench/fuzz_bench.py` runs them with many more examples.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import string
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from picsift.errors import PicsiftError

# Text that reaches the corners of delimited, JSON and YAML parsing: delimiters, quotes, comment and escape
# characters, line ends of every system, a byte order mark, NUL and other controls, lone surrogates, accents.
_NASTY = ",;\t|\"'#\\/\r\n \x00\x1b\ufeff\u2028:-[]{}&*!%@`~.="
TEXT = st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits + _NASTY + "éè\u0301中\U0001f600"))
ANY_TEXT = st.one_of(TEXT, st.text())  # st.text() includes lone surrogates
BYTES = st.binary(max_size=300)
LABEL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(",;|\t\"'# "), min_size=1, max_size=20
)
SPLIT = st.sampled_from(["train", "val", "test", "Training", "validation", "dev", "", "bogus"])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


@dataclass
class Stats:
    """What one target's run saw: inputs tried, valid results, typed refusals, crashes and unclear messages."""

    target: str
    tried: int = 0
    valid: int = 0
    refused: int = 0
    crashes: list[str] = field(default_factory=list)  # "TypeError: ... (input ...)"
    unclear: list[str] = field(default_factory=list)  # refusal messages that do not say where


class Crash(AssertionError):
    """A parser raised something other than a picsift typed error, or gave an invalid result."""


class Unclear(AssertionError):
    """A parser refused an input with a message that does not name the file or flag."""


@dataclass(frozen=True)
class Target:
    """One parser under fuzzing: what it is fed and how one input is run.

    `run(folder, value)` parses one input, checking a valid result's invariants (raising Crash when one does not
    hold); it lets PicsiftError through, whose message must contain `where` (the file name, the flag)."""

    name: str
    kind: str  # the input kind, for the bench table
    strategy: st.SearchStrategy[Any]
    run: Callable[[Path, Any], object]
    where: str = ""


def judge(target: Target, folder: Path, value: Any, stats: Stats | None = None) -> None:
    """Run `target` on one input; raise Crash or Unclear (after counting it in `stats`, when given)."""
    try:
        target.run(folder, value)
    except PicsiftError as e:
        _count(stats, "refused")
        message = str(e)
        if not message.strip() or target.where not in message:
            _count(stats, "unclear", f"{message[:200]} (input {value!r:.200})")
            raise Unclear(f"{target.name}: message does not name {target.where!r}: {message}") from e
        return
    except Crash as e:
        _count(stats, "crashes", f"{e} (input {value!r:.200})")
        raise
    except Exception as e:
        _count(stats, "crashes", f"{type(e).__name__}: {e} (input {value!r:.200})")
        raise Crash(f"{target.name}: {type(e).__name__}: {e} on input {value!r:.300}") from e
    _count(stats, "valid")


def _count(stats: Stats | None, what: str, detail: str | None = None) -> None:
    if stats is None:
        return
    if detail is None:
        setattr(stats, what, getattr(stats, what) + 1)
    else:
        getattr(stats, what).append(detail)


def fuzz(target: Target, examples: int, *, keep_going: bool = False, seed: int | None = None) -> Stats:
    """Run `target` on `examples` generated inputs. Without `keep_going` the first Crash or Unclear is raised
    (shrunk by Hypothesis to a small input); with it every input runs and the failures are only counted."""
    stats = Stats(target.name)
    with tempfile.TemporaryDirectory(prefix="picsift-fuzz-") as tmp:
        folder = Path(tmp)

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=seed is None,
            suppress_health_check=list(HealthCheck),
        )
        @given(target.strategy)
        def one(value: Any) -> None:
            stats.tried += 1
            try:
                judge(target, folder, value, stats)
            except (Crash, Unclear):
                if not keep_going:
                    raise

        if seed is not None:
            one = hypothesis_seed(seed)(one)
        one()
    return stats


# ---- targets ---------------------------------------------------------------------------------------------------


def _write(path: Path, value: str | bytes) -> Path:
    if isinstance(value, bytes):
        path.write_bytes(value)
    else:
        path.write_bytes(value.encode("utf-8", "surrogatepass"))
    return path


def _images(folder: Path) -> list[str]:
    """A few files a manifest can name (discovery does not decode them)."""
    names = ["a.png", "b c.jpg", "sub/d.png", "é.png"]
    for n in names:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        (folder / n).write_bytes(b"x")
    return names


def _manifest(folder: Path, value: str | bytes) -> str:
    from picsift.ingest.sources import discover_manifest

    _images(folder)
    disc = discover_manifest(_write(folder / "manifest.csv", value))
    for e in disc.entries:
        if not (e.url or os.path.isfile(e.path)):
            raise Crash(f"entry for a file that does not exist: {e.path!r}")
        if e.split not in (None, "train", "val", "test"):
            raise Crash(f"entry with split {e.split!r}")
        if e.label is not None and (not e.label or e.label != e.label.strip()):
            raise Crash(f"entry with label {e.label!r}")
    return "manifest.csv"


MANIFEST_TEXT = st.one_of(
    TEXT,
    BYTES,
    st.lists(
        st.tuples(
            st.sampled_from(["a.png", "b c.jpg", "sub/d.png", "missing.png", "", "sub", "#x"]) | TEXT, LABEL, SPLIT
        ),
        max_size=6,
    ).flatmap(
        lambda rows: st.sampled_from([",", ";", "\t", "|"]).map(
            lambda d: ("path,label,split\n" if rows and len(rows) % 2 else "") + _csv(rows, d)
        )
    ),
)


def _csv(rows: list[tuple[str, ...]], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue()


def _manifest_round_trip(folder: Path, value: tuple[list[tuple[str, str, str]], str]) -> str:
    """A manifest written with csv.writer (any delimiter, any labels) reads back the same labels and splits."""
    from picsift.ingest.sources import discover_manifest
    from picsift.labels_text import normalize_label

    rows, delimiter = value
    names = _images(folder)
    rows = [(names[i % len(names)], label, split) for i, (_, label, split) in enumerate(rows)]
    rows = list({r[0]: r for r in rows}.values())  # one row per file
    disc = discover_manifest(_write(folder / "manifest.csv", _csv([("path", "label", "split"), *rows], delimiter)))
    got = {os.path.relpath(e.path, folder): (e.label, e.split) for e in disc.entries}
    want = {p: (normalize_label(lab), s) for p, lab, s in rows}
    if got != want:
        raise Crash(f"manifest read back {got}, written {want}")
    return "manifest.csv"


ROUND_TRIP_LABEL = LABEL.filter(lambda s: s.strip() and not s.strip().startswith("#"))
MANIFEST_ROWS = st.tuples(
    st.lists(
        st.tuples(st.just(""), ROUND_TRIP_LABEL, st.sampled_from(["train", "val", "test"])), min_size=1, max_size=4
    ),
    st.sampled_from([",", ";", "\t", "|"]),
)


def _url_list(folder: Path, value: str | bytes) -> str:
    from picsift.ingest.sources import discover_url_list
    from picsift.ingest.urls import is_url

    disc = discover_url_list(_write(folder / "urls.txt", value))
    for e in disc.entries:
        if not is_url(e.path):
            raise Crash(f"entry that is not a URL: {e.path!r}")
    return "urls.txt"


URL_TEXT = st.one_of(
    TEXT,
    BYTES,
    st.lists(
        st.tuples(st.sampled_from(["http://", "https://", "ftp://", "http://[::1", "", "//"]), TEXT, LABEL, SPLIT).map(
            lambda t: f"{t[0]}{t[1]},{t[2]},{t[3]}"
        ),
        max_size=5,
    ).map("\n".join),
)


def _label_text(folder: Path, value: tuple[str, str | bytes]) -> str:
    from picsift.label.label_files import read_label_file

    suffix, text = value
    _check_records(read_label_file(_write(folder / f"labels.{suffix}", text)))
    return "labels."


def _check_records(result: Any) -> None:
    for r in result.records:
        for text in (r.path, r.sha256, r.annotator):
            if text is not None and not isinstance(text, str):
                raise Crash(f"record field {text!r} is not text")
        if not all(isinstance(lab, str) and lab and lab == lab.strip() for lab in r.labels):
            raise Crash(f"record labels {r.labels!r}")


LABEL_TEXT = st.tuples(st.sampled_from(["csv", "tsv", "json", "txt"]), st.one_of(TEXT, BYTES))


def _label_json(folder: Path, value: Any) -> str:
    from picsift.label.label_files import read_label_file

    try:
        text = json.dumps(value)
    except ValueError:  # NaN is allowed by json.dumps; nothing else fails
        return "labels.json"
    _check_records(read_label_file(_write(folder / "labels.json", text)))
    return "labels.json"


def _choices_value(labels: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"choices": st.lists(labels, max_size=3)}) | labels


# Real shapes (picsift JSON, COCO, Label Studio JSON and JSON-MIN) with any field replaced by any JSON value.
_ANY = JSON | LABEL
LABEL_SHAPES = st.one_of(
    st.fixed_dictionaries(
        {"format": st.just("picsift-labels"), "images": st.lists(st.fixed_dictionaries({"path": _ANY, "label": _ANY}))}
    ),
    st.fixed_dictionaries(
        {
            "images": st.lists(st.fixed_dictionaries({"id": _ANY, "file_name": _ANY}), max_size=3) | _ANY,
            "categories": st.lists(st.fixed_dictionaries({"id": _ANY, "name": _ANY}), max_size=3) | _ANY,
            "annotations": st.lists(st.fixed_dictionaries({"image_id": _ANY, "category_id": _ANY}), max_size=3) | _ANY,
        }
    ),
    st.lists(
        st.fixed_dictionaries(
            {
                "id": _ANY,
                "data": st.fixed_dictionaries({"image": _ANY, "sha256": _ANY}) | _ANY,
                "annotations": st.lists(
                    st.fixed_dictionaries(
                        {
                            "result": st.lists(
                                st.fixed_dictionaries(
                                    {"from_name": _ANY, "type": st.just("choices"), "value": _choices_value(_ANY)}
                                )
                                | _ANY,
                                max_size=2,
                            )
                            | _ANY,
                            "was_cancelled": _ANY,
                            "completed_by": _ANY,
                        }
                    )
                    | _ANY,
                    max_size=2,
                )
                | _ANY,
            }
        ),
        max_size=3,
    ),
    st.lists(st.fixed_dictionaries({"image": _ANY, "choice": _ANY, "annotator": _ANY}), max_size=3),
)


def _label_csv_round_trip(folder: Path, labels: list[str]) -> str:
    """picsift's own label export (csv.writer, a comma, any labels) reads back the same labels."""
    from picsift.label.label_files import read_label_file
    from picsift.labels_text import normalize_label

    rows = [(i + 1, f"img/{i}.png", f"{i:064x}", lab, "train", 0) for i, lab in enumerate(labels)]
    text = _csv([("image_id", "path", "sha256", "label", "split", "excluded"), *rows], ",")
    got = [(r.path, r.labels) for r in read_label_file(_write(folder / "labels.csv", text)).records]
    want = [(f"img/{i}.png", (normalize_label(lab),)) for i, lab in enumerate(labels)]
    if got != want:
        raise Crash(f"labels read back {got}, written {want}")
    return "labels.csv"


def _yaml_text(folder: Path, value: str | bytes) -> str:
    from picsift.config import TrainConfig, load_yaml_overrides

    load_yaml_overrides(TrainConfig, _write(folder / "train.yaml", value)).validate()
    return "train.yaml"


def _train_fields() -> list[str]:
    import dataclasses

    from picsift.config import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig)]


YAML_VALUE = JSON | st.sampled_from([".nan", ".inf", "2001-01-01", "1e999", "9" * 400, "!!binary x", "~", "yes"])
YAML_SETTINGS = st.dictionaries(st.sampled_from(_train_fields()) | st.text(max_size=8), YAML_VALUE, max_size=4)


def _yaml_settings(folder: Path, value: dict[str, Any]) -> str:
    """Any settings (known or not, values of any kind) written as YAML: a checked TrainConfig or a ConfigError;
    and settings of the right kinds come back unchanged."""
    from picsift.config import TrainConfig, load_yaml_overrides

    try:
        text = yaml.safe_dump(value, allow_unicode=True)
    except yaml.YAMLError:  # a value YAML cannot write: nothing to read back
        return "train.yaml"
    cfg = load_yaml_overrides(TrainConfig, _write(folder / "train.yaml", text)).validate()
    for key in value:
        got = getattr(cfg, key)
        if isinstance(got, (int, float, str, bool)) and got != value[key] and not isinstance(value[key], str):
            raise Crash(f"setting {key}: wrote {value[key]!r}, read {got!r}")
    return "train.yaml"


def _param(folder: Path, value: str) -> str:
    from picsift.cli.train_cmd import parse_params

    parsed = parse_params([value])
    if parsed is not None and not all(isinstance(k, str) and k == k.strip() and k for k in parsed):
        raise Crash(f"--param keys {list(parsed)}")
    return "--param"


PARAM_TEXT = st.one_of(
    ANY_TEXT,
    st.tuples(TEXT, st.sampled_from(["="]), YAML_VALUE.map(str) | ANY_TEXT).map("".join),
)


def _model_params(folder: Path, value: tuple[str, dict[str, Any]]) -> str:
    """Settings of the fast CNN, transfer and classical families with values of any kind."""
    from picsift.classical.estimators import make_classifier
    from picsift.train.fast.recipe import FastRecipe
    from picsift.train.transfer.recipe import TransferRecipe

    family, params = value
    if family == "fastcnn":
        FastRecipe.from_params(params)
    elif family == "transfer":
        TransferRecipe.from_params(params)
    else:
        make_classifier(family, params)
    return ""


def _param_keys() -> list[str]:
    from picsift.train.fast.recipe import KNOWN as FAST
    from picsift.train.transfer.recipe import KNOWN as TRANSFER

    return sorted(FAST | TRANSFER | {"C", "n_neighbors", "max_depth", "n_estimators", "kernel", "gamma"})


PARAM_VALUE = (
    JSON | st.integers(min_value=-(10**400), max_value=10**400) | st.sampled_from([float("nan"), float("inf")])
)
MODEL_PARAMS = st.tuples(
    st.sampled_from(["fastcnn", "transfer", "svm", "knn", "random-forest", "logistic"]),
    st.dictionaries(st.sampled_from(_param_keys()) | st.text(max_size=6), PARAM_VALUE, max_size=3),
)


def _member_names(folder: Path, value: tuple[str, list[str]]) -> str:
    """A zip or tar with members of any names: extracted inside its folder or refused with a reason."""
    from picsift.ingest.archives import extract

    kind, names = value
    archive = folder / f"archive.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for i, n in enumerate(names):
                if n.split("\0")[0]:  # zipfile cuts a name at NUL and cannot write an empty one
                    zf.writestr(n, f"member {i}")
    else:
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
            for i, n in enumerate(names):
                data = f"member {i}".encode()
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    into = folder / "ws"
    out = extract(archive, into)
    root = out.folder.resolve()
    written = [p for p in out.folder.rglob("*") if p.is_file()]
    for p in written:
        if not p.resolve().is_relative_to(root):
            raise Crash(f"member written outside the folder: {p}")
    outside = [p for p in folder.rglob("*") if p.is_file() and not p.resolve().is_relative_to(into.resolve())]
    if sorted(p.name for p in outside) != [archive.name]:
        raise Crash(f"files written outside the extraction folder: {outside}")
    files = {n.split("\0")[0] for n in names} - {""}  # zipfile cuts a name at NUL
    if kind == "zip" and len(written) + len(out.refused) < len({n for n in files if not n.endswith("/")}):
        raise Crash(f"members neither extracted nor refused: {names}, {len(written)} written, {out.refused}")
    for name, why in out.refused:
        if not why:
            raise Crash(f"member {name!r} refused without a reason")
    shutil.rmtree(into)
    archive.unlink()
    return "archive"


MEMBER_NAME = st.one_of(
    TEXT.filter(bool),
    st.lists(st.sampled_from(["..", ".", "", "a", "CON", "a:b", "C:", "\\", "é", "x" * 300, "Cat", "cat"]), min_size=1)
    .map("/".join)
    .filter(bool),
    st.sampled_from(["/etc/passwd", "../../x", "C:\\x", "\\\\host\\share\\x", "a/../../b"]),
)
MEMBER_NAMES = st.tuples(st.sampled_from(["zip", "tar"]), st.lists(MEMBER_NAME, min_size=1, max_size=5))


def _file_names(folder: Path, texts: list[str]) -> str:
    """safe_filename and UniqueNames: every name is creatable, distinct ignoring case, inside its folder."""
    from picsift.filenames import MAX_NAME_BYTES, WINDOWS_RESERVED, UniqueNames, inside, safe_filename

    names = UniqueNames()
    given = [names.new(t) for t in texts]
    folded = [n.casefold() for n in given]
    if len(set(folded)) != len(folded):
        raise Crash(f"names not distinct: {given}")
    for text, name in zip(texts, given, strict=True):
        if safe_filename(text) != safe_filename(text) or safe_filename(safe_filename(text)) != safe_filename(text):
            raise Crash(f"safe_filename({text!r}) is not stable")
        if len(name.encode("utf-8")) > MAX_NAME_BYTES or name in (".", "..") or name != name.strip():
            raise Crash(f"name {name!r} for {text!r}")
        if any(c in name for c in '/\\<>:"|?*\x00') or name.split(".")[0].upper() in WINDOWS_RESERVED:
            raise Crash(f"name {name!r} for {text!r} is not portable")
        path = inside(folder, name)
        path.write_bytes(b"x")
        path.unlink()
    return ""


FILE_NAMES = st.lists(ANY_TEXT | MEMBER_NAME, min_size=1, max_size=6)


TARGETS = [
    Target("CSV manifest", "manifest text/bytes", MANIFEST_TEXT, _manifest, "manifest.csv"),
    Target("CSV manifest (round trip)", "rows, any delimiter", MANIFEST_ROWS, _manifest_round_trip, "manifest.csv"),
    Target("URL list", "URL list text/bytes", URL_TEXT, _url_list, "urls.txt"),
    Target("label file (text)", "CSV/TSV/JSON/any text", LABEL_TEXT, _label_text, "labels."),
    Target("label file (JSON)", "any JSON value", JSON, _label_json, "labels.json"),
    Target("label file (LS/COCO shapes)", "real shapes, any field", LABEL_SHAPES, _label_json, "labels.json"),
    Target("label CSV (round trip)", "export rows, any labels", st.lists(ROUND_TRIP_LABEL, min_size=1, max_size=5),
           _label_csv_round_trip, "labels.csv"),
    Target("YAML config (text)", "YAML text/bytes", st.one_of(TEXT, BYTES), _yaml_text, "train.yaml"),
    Target("YAML config (settings)", "settings of any kind", YAML_SETTINGS, _yaml_settings, "train.yaml"),
    Target("--param", "KEY=VALUE text", PARAM_TEXT, _param, "--param"),
    Target("model_params", "model settings of any kind", MODEL_PARAMS, _model_params),
    Target("archive member names", "zip/tar member names", MEMBER_NAMES, _member_names),
    Target("file names", "labels/names as file names", FILE_NAMES, _file_names),
]  # fmt: skip
