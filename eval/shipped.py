"""The benchmark slices the project ships (``benchmarks/``, see its SOURCES.md), by the names ``--data`` takes.

A module of its own with no imports from eval/: the task registry, the task files and the data loaders
all read it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = ROOT / "benchmarks"  # the slices the project ships (see its SOURCES.md)

# --data NAME: the shipped benchmark files by name
SHIPPED: dict[str, tuple[str, str]] = {
    **{f"flores200-{pair}": (f"translation_flores200_devtest_{pair}.jsonl", "translation")
       for pair in ("en-fr", "fr-en", "en-de", "de-en", "en-zh", "zh-en")},
    "xsum": ("summarization_xsum_test.jsonl", "summarization"),
    "cnndm": ("summarization_cnndm_test_summeval.jsonl", "summarization"),
    "topicalchat": ("dialogue_topicalchat_test_freq.jsonl", "dialogue"),
    "wikitext2": ("wikitext2_raw_test.txt", "perplexity"),
    "crowspairs": ("bias_crowspairs_dev.jsonl", "bias"),
    "bbq": ("bbq_slice.jsonl", "bbq"),
    "xcopa-zh": ("xcopa_zh_test_dev.jsonl", "xcopa_zh"),
    "xcopa-zh-validation": ("xcopa_zh_validation.jsonl", "xcopa_zh"),
}


def resolve_data(spec: str) -> str:
    """A shipped name (``flores200-en-fr``) becomes its file's path; paths and ``hf:`` names stay as they are."""
    if spec in SHIPPED:
        return str(SHIPPED_DIR / SHIPPED[spec][0])
    return spec


def shipped_list() -> list[tuple[str, str, int, str]]:
    """(name, task, examples, file) for each shipped benchmark."""
    out = []
    for name, (fname, task) in SHIPPED.items():
        p = SHIPPED_DIR / fname
        rows = 1 if p.suffix == ".txt" else sum(1 for line in open(p, encoding="utf-8") if line.strip())
        out.append((name, task, rows, fname))
    return out
