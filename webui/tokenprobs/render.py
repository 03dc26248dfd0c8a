"""What the token panels show: the answer's tokens coloured by probability, a token's alternatives, their CSS
and the click handlers' JS. Every text is HTML-escaped."""

from __future__ import annotations

import html
import math

from llmdemo.interface import SERVER_TOKEN_PROBS, TOKEN_PROBS
from llmdemo.tokenprobs import TokenInfo

from ..i18n import text as msg

TOP = 10  # alternatives recorded and shown per token
BUCKETS = (0.8, 0.5, 0.2, 0.05)  # p_before thresholds of the colours tp-b0 (likely) .. tp-b4 (unlikely)

# light: pastel backgrounds, dark text; dark (Gradio puts .dark on the root): deep backgrounds, light text
_LIGHT = ["#c9f2d5", "#e3f1c0", "#fff0b8", "#fdd9bd", "#fcc6c6"]
_DARK = ["#14532d", "#3f5714", "#6b5512", "#7a3a10", "#7f1d1d"]
CSS = """
.tp-note {font-size: 0.85em; opacity: 0.85; margin: 2px 0 6px}
.tp-legend {display: flex; flex-wrap: wrap; gap: 4px; align-items: center; font-size: 0.8em; margin-bottom: 6px}
.tp-legend span.tp-key {padding: 0 6px; border-radius: 3px}
.tp-tokens {line-height: 1.9; font-size: 15px; overflow-wrap: anywhere; white-space: pre-wrap; max-width: 100%}
.tp-tok {padding: 1px 1px; border-radius: 3px; cursor: pointer; color: #111827;
         -webkit-box-decoration-break: clone; box-decoration-break: clone}
.tp-tok:hover, .tp-tok:focus {outline: 2px solid #6366f1; outline-offset: 0}
.tp-tok.tp-sel {outline: 2px solid #1d4ed8; outline-offset: 1px}
.tp-tok.tp-empty {opacity: 0.6}
.dark .tp-tok {color: #f3f4f6}
.dark .tp-tok.tp-sel {outline-color: #93c5fd}
.tp-detail {font-size: 0.9em; margin-top: 4px}
.tp-detail .tp-head {margin-bottom: 4px}
.tp-detail code, .tp-alt-text {font-family: monospace; white-space: pre; background: rgba(127, 127, 127, 0.15);
         padding: 0 3px; border-radius: 3px}
.tp-alts {border-collapse: collapse; width: 100%; max-width: 560px}
.tp-alts th, .tp-alts td {padding: 3px 6px; text-align: left; border: none !important;
         border-bottom: 1px solid rgba(127, 127, 127, 0.3) !important}
.tp-alts th {font-weight: 600; font-size: 0.85em}
.tp-alts td.tp-num {text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap}
.tp-alts tr.tp-picked td {font-weight: 600}
.tp-alt {cursor: pointer; border: 1px solid rgba(127, 127, 127, 0.5); border-radius: 4px; padding: 1px 8px;
         background: transparent; color: inherit; font: inherit; white-space: nowrap}
.tp-alt:hover, .tp-alt:focus {border-color: #6366f1; outline: none}
.tp-bar {display: inline-block; height: 6px; background: #6366f1; border-radius: 3px; vertical-align: middle;
         margin-left: 4px; opacity: 0.7}
@media (max-width: 640px) {.tp-alts th, .tp-alts td {padding: 3px 3px}; .tp-bar {display: none}}
""" + "".join(f".tp-b{i} {{background: {c}}}\n" for i, c in enumerate(_LIGHT)) \
    + "".join(f".dark .tp-b{i} {{background: {c}}}\n" for i, c in enumerate(_DARK))

# a click on a token (or Enter/space on one) sends its index; on an alternative, its position and token id
TOKENS_JS = """
const send = (el) => trigger('click', {index: Number(el.dataset.i)});
element.addEventListener('click', (e) => { const t = e.target.closest('.tp-tok'); if (t) send(t); });
element.addEventListener('keydown', (e) => {
  const t = e.target.closest('.tp-tok');
  if (t && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); send(t); }
});
"""
DETAIL_JS = """
element.addEventListener('click', (e) => {
  const b = e.target.closest('.tp-alt');
  if (b) trigger('click', {index: Number(b.dataset.i), alt: Number(b.dataset.alt)});
});
"""


def _esc(s: str) -> str:
    """HTML-escaped, with the characters of gr.HTML's template syntax (``${}``, ``{{}}``) as entities too."""
    return html.escape(s, quote=True).replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def _pct(p: float | None) -> str:
    if p is None:
        return "—"
    if p > 0 and p < 0.001:
        return "<0.1%"
    return f"{p * 100:.1f}%"


def bucket(p: float) -> int:
    """The colour class of a probability: 0 (at least 0.8) .. 4 (under 0.05)."""
    return next((k for k, t in enumerate(BUCKETS) if p >= t), len(BUCKETS))


def _shown(piece: str) -> str:
    """A token's text as shown inside a table cell: whitespace made visible."""
    if piece == "":
        return "∅"
    return piece.replace("\n", "↵").replace("\t", "⇥").replace(" ", "␣") if not piece.strip() else \
        piece.replace("\n", "↵")


def kind_of(lm) -> str:
    """"full" (in-process: before and after the settings), "server" (as a server reports them) or "none"."""
    caps = getattr(lm, "capabilities", frozenset())
    return "full" if TOKEN_PROBS in caps else "server" if SERVER_TOKEN_PROBS in caps else "none"


def _legend(lang: str) -> str:
    keys = ["≥80%", "50–80%", "20–50%", "5–20%", "<5%"]
    return ('<div class="tp-legend">' + _esc(msg("tp_legend", lang)) +
            "".join(f'<span class="tp-key tp-b{k}">{_esc(v)}</span>' for k, v in enumerate(keys)) + "</div>")


def render_tokens(infos: list[TokenInfo], selected: int | None = None, lang: str = "en", kind: str = "full",
                  backend: str = "") -> str:
    """The answer as coloured spans, one per token (``data-i`` is its position), with the legend."""
    if kind == "none":
        return f'<div class="tp-note">{_esc(msg("tp_none", lang, backend=backend))}</div>'
    note = msg("tp_server", lang) if kind == "server" else msg("tp_click", lang)
    spans = []
    for k, info in enumerate(infos):
        cls = f"tp-tok tp-b{bucket(info.p_before)}" + (" tp-sel" if k == selected else "")
        piece = info.text
        if piece == "":
            cls += " tp-empty"
            piece = "·"  # a token that is half a character: its text comes with the next one
        title = f"{_pct(info.p_before)} · {msg('tp_after', lang)} {_pct(info.p_after)}"
        spans.append(f'<span class="{cls}" data-i="{k}" role="button" tabindex="0" title="{_esc(title)}">'
                     f"{_esc(piece)}</span>")
    return (f'<div class="tp-note">{_esc(note)}</div>{_legend(lang)}'
            f'<div class="tp-tokens">{"".join(spans)}</div>')


def render_detail(infos: list[TokenInfo], i: int | None, lang: str = "en", can_branch: bool = True) -> str:
    """Token ``i``: its probabilities, the entropy there and the alternatives (buttons that branch)."""
    if i is None or not 0 <= i < len(infos):
        return ""
    info = infos[i]
    parts = [msg("tp_token", lang, i=i + 1), f"<code>{_esc(_shown(info.text))}</code>",
             f"{_esc(msg('tp_before', lang))} {_pct(info.p_before)}",
             f"{_esc(msg('tp_after', lang))} {_pct(info.p_after)}"]
    if info.entropy is not None:
        parts.append(_esc(msg("tp_entropy", lang, nats=info.entropy, bits=info.entropy / math.log(2))))
    rows = []
    for a in info.alternatives:
        picked = a.id == info.id if a.id is not None else a.text == info.text
        if can_branch and a.id is not None and not picked:
            cell = (f'<button class="tp-alt" data-i="{i}" data-alt="{int(a.id)}" title="{_esc(msg("tp_branch", lang))}">'
                    f'<span class="tp-alt-text">{_esc(_shown(a.text))}</span></button>')
        else:
            cell = f'<span class="tp-alt-text">{_esc(_shown(a.text))}</span>' + \
                   (f" ({_esc(msg('tp_chosen', lang))})" if picked else "")
        bar = f'<span class="tp-bar" style="width: {max(1, round(a.p_before * 60))}px"></span>'
        rows.append(f'<tr class="{"tp-picked" if picked else ""}"><td>{cell}</td>'
                    f'<td class="tp-num">{_pct(a.p_before)}{bar}</td><td class="tp-num">{_pct(a.p_after)}</td></tr>')
    hint = msg("tp_branch_hint", lang) if can_branch else msg("tp_no_branch", lang)
    return (f'<div class="tp-detail"><div class="tp-head">{" · ".join(parts)}</div>'
            f'<table class="tp-alts"><thead><tr><th>{_esc(msg("tp_alternative", lang))}</th>'
            f'<th>{_esc(msg("tp_before", lang))}</th><th>{_esc(msg("tp_after", lang))}</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><div class="tp-note">{_esc(hint)}</div></div>')
