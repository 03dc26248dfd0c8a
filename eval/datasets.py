"""Benchmark loaders -> plain records, with errors that name the file and line.

Local files use the schemas of the shipped ``benchmarks/`` (see its SOURCES.md); ``hf:NAME`` loads a
Hugging Face dataset (needs the Hub) and maps it to the same records.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmdemo.errors import DetailError
from llmdemo.prompts import _SURROGATE  # what the app's clean_text replaces, the same way


def _required() -> dict[str, dict[str, type]]:
    from .tasks import TASKS

    return {name: t.fields for name, t in TASKS.items()}


from .shipped import resolve_data


class DataError(DetailError, ValueError):
    """Unusable benchmark data; the message names the file (and line)."""

    kind = "eval.data"


def load_records(path: str | Path, task: str, limit: int | None = None) -> list[dict]:
    required = _required()
    if task not in required:
        raise DataError(f"unknown task {task!r}; choose one of: {', '.join(required)}")
    spec = resolve_data(str(path))
    if spec.startswith("hf:"):
        return _load_hub(spec[3:], task, limit)
    p = Path(spec)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if task == "perplexity" and p.suffix != ".jsonl":
        try:
            text = p.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark is allowed and dropped
        except UnicodeDecodeError as e:
            raise DataError(f"{p}: not UTF-8 text (byte {e.start}: {e.reason})") from None
        if not text.strip():
            raise DataError(f"{p}: the file is empty")
        return [{"id": p.stem, "text": text}]
    records, ids = [], set()
    # a limit on BBQ takes examples from every category in turn: its file is sorted by category, and the
    # first 20 were Age only (an overall accuracy of one category)
    stratified = task == "bbq"
    with open(p, encoding="utf-8-sig") as f:  # a UTF-8 byte-order mark is allowed and dropped
        n = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as e:
                raise DataError(f"{p}, line {n + 1}: not UTF-8 text ({e.reason})") from None
            if not line:
                break
            n += 1
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}, line {n}: malformed JSON ({e.msg})") from None
            except ValueError:  # Python's cap on integer digits (4,300): a 5,000-digit id was a traceback
                raise DataError(f"{p}, line {n}: a number too long to read (over 4,300 digits)") from None
            except RecursionError:
                raise DataError(f"{p}, line {n}: JSON nested too deeply") from None
            if not isinstance(rec, dict):
                raise DataError(f"{p}, line {n}: expected a JSON object")
            for field, typ in required[task].items():
                if field not in rec:
                    raise DataError(f"{p}, line {n}: missing field {field!r} for task {task}")
                if not isinstance(rec[field], typ):
                    raise DataError(f"{p}, line {n}: field {field!r} must be {typ.__name__}")
            for k, v in rec.items():  # a JSON "\ud800" escape decodes to a lone surrogate, which no file can hold
                if isinstance(v, str) and _SURROGATE.search(v):
                    rec[k] = _SURROGATE.sub("\ufffd", v)
                elif isinstance(v, list):
                    rec[k] = [_SURROGATE.sub("\ufffd", x) if isinstance(x, str) else x for x in v]
            rec.setdefault("id", str(len(records)))
            rec["id"] = str(rec["id"])
            if rec["id"] in ids:
                raise DataError(f"{p}, line {n}: duplicate id {rec['id']!r}")
            ids.add(rec["id"])
            records.append(rec)
            if limit is not None and len(records) >= limit and not stratified:
                break
    if not records:
        raise DataError(f"{p}: no examples (the file is empty)")
    if stratified and limit is not None:  # each category, ambiguous and disambiguated contexts apart
        records = spread(records, limit, key=lambda r: (r.get("category"), r.get("context_condition")))
    if task == "translation":
        pairs = {(r["src_lang"], r["tgt_lang"]) for r in records}
        if len(pairs) > 1:
            raise DataError(f"{p}: mixed language pairs {sorted(pairs)}; use one pair per run")
    return records


def spread(records: list[dict], limit: int, key=lambda r: r.get("category")) -> list[dict]:
    """``limit`` records taken from each group (``key(record)``) in turn, each group in file order; the
    records chosen are returned in file order.

    >>> rs = [{"id": str(i), "category": c} for i, c in enumerate("AAAABBBBCC")]
    >>> [r["id"] for r in spread(rs, 5)]
    ['0', '1', '4', '5', '8']
    """
    groups: dict = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    chosen, lists = set(), list(groups.values())
    for i in range(max(len(g) for g in lists)):
        for g in lists:
            if i < len(g) and len(chosen) < limit:
                chosen.add(id(g[i]))
    return [r for r in records if id(r) in chosen]


_HUB = {
    # name: (dataset, config, split, mapper)
    "xsum": ("EdinburghNLP/xsum", None, "test", lambda r, i: {"id": r.get("id", i), "document": r["document"],
                                                               "summary": r["summary"]}),
    "cnn_dailymail": ("abisee/cnn_dailymail", "3.0.0", "test",
                      lambda r, i: {"id": r.get("id", i), "document": r["article"], "summary": r["highlights"]}),
    "wikitext": ("Salesforce/wikitext", "wikitext-2-raw-v1", "test", None),
}


def map_hub_rows(name: str, ds) -> list[dict]:
    """A Hugging Face dataset's rows (any iterable of dicts) -> llmdemo records, for ``hf:NAME``.

    >>> map_hub_rows("wmt14:fr-en", [{"translation": {"en": "Hi", "fr": "Salut"}}])
    [{'id': '0', 'source': 'Salut', 'target': 'Hi', 'src_lang': 'fr', 'tgt_lang': 'en'}]
    """
    base, _, pair = name.partition(":")
    if pair:
        src, tgt = pair.split("-")
        return [{"id": str(i), "source": r["translation"][src], "target": r["translation"][tgt],
                 "src_lang": src, "tgt_lang": tgt} for i, r in enumerate(ds)]
    mapper = _HUB[base][3]
    if mapper is None:  # wikitext: one text, the split's lines joined as they come
        return [{"id": "wikitext-2-test", "text": "".join(r["text"] for r in ds)}]
    return [{**mapper(r, str(i)), "id": str(mapper(r, str(i))["id"])} for i, r in enumerate(ds)]


def _load_hub(name: str, task: str, limit: int | None) -> list[dict]:
    """``hf:xsum``, ``hf:cnn_dailymail``, ``hf:wikitext``, ``hf:wmt14:fr-en`` (source = first language)."""
    try:
        import datasets
    except ImportError:
        raise DataError("the 'datasets' package is needed for hf: datasets") from None
    parts = name.split(":")
    try:
        if parts[0] in ("wmt14", "wmt16", "wmt19") and len(parts) == 2:
            src, tgt = parts[1].split("-")
            pair = "-".join(sorted([src, tgt], key=lambda x: x == "en"))
            ds = datasets.load_dataset(f"wmt/{parts[0]}", pair, split="test")
            rows = map_hub_rows(f"{parts[0]}:{src}-{tgt}", ds)
        elif parts[0] in _HUB:
            dsname, cfg, split, _ = _HUB[parts[0]]
            rows = map_hub_rows(parts[0], datasets.load_dataset(dsname, cfg, split=split))
        else:
            raise DataError(f"unknown hub dataset {name!r}; known: {', '.join(_HUB)}, wmt14:SRC-TGT")
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - offline, missing config, ...
        raise DataError(f"could not load hub dataset {name!r}: {str(e).splitlines()[0]}") from None
    for r in rows:
        r["id"] = str(r["id"])
    return rows[:limit] if limit else rows
