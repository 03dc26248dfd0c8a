"""What the Compare tab shows: a side and one update of a comparison (titles, stats lines), and the
leaderboard as a Markdown table; every name HTML-escaped."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from typing import Any

from llmdemo.compare import ratings
from llmdemo.compare.board import MAX_RATED, PRELIMINARY_BATTLES
from llmdemo.compare.contestants import split_entry

from ...i18n import text as msg
from ...stats import _Starting, stats_line

# a phone: the leaderboard drops its Battles column (W / L / T has them), names do not break inside a word
CSS = """
@media (max-width: 640px) {
  #cmp-board-table th:nth-child(5), #cmp-board-table td:nth-child(5) {display: none}
  #cmp-board-table th, #cmp-board-table td {font-size: 12px; padding: 4px 6px; word-break: normal !important}
}
"""


@dataclass
class _Side:
    letter: str  # the side it is shown on: A, B, ...
    name: str  # the contestant's name (hidden until the vote when blind)
    cfg: Any  # GenerationConfig
    preset: str
    lm: Any = None  # the model it runs on: the loaded one, or one loaded beside it (llmdemo/compare/models.py)
    prompt: Any = None  # prompts.TaskPrompt, built for that model (its own chat template)
    text: str = ""
    stats: Any = field(default_factory=_Starting)
    running: bool = True
    stream: Any = None


@dataclass
class Progress:
    """One update of a comparison: every side's text and stats line; ``state`` once it is recorded."""
    sides: list[_Side]
    blind: bool
    lang: str
    done: bool = False
    state: dict | None = None  # {"session_id", "comparison_id"} once recorded; None while running

    def title(self, side: _Side, revealed: bool = False) -> str:
        if self.blind and not revealed:
            return f"### {side.letter}"
        return f"### {side.letter}: {html.escape(side.name)}"

    def line(self, side: _Side) -> str:
        # blind: nothing that names the side before the vote ("greedy", a seed named it 10 times of 10)
        return stats_line(side.stats, cfg=side.cfg, lang=self.lang, done=not side.running, identify=not self.blind)


def _label(entry: str) -> str:
    """An operator's entry as visitors see it: ``greedy @ /srv/models/x.gguf`` -> ``greedy @ x.gguf`` (a
    server path says how the host is laid out); presets, hub ids and ``llamacpp:default`` unchanged."""
    preset, model = split_entry(entry)
    bare = model.removeprefix("llamacpp:")
    if model and (os.path.isabs(os.path.expanduser(bare)) or bare.startswith((".", "~")) or os.path.exists(bare)):
        return f"{preset} @ {os.path.basename(bare.rstrip('/')) or bare}"
    return entry


def _cell(name: str) -> str:
    """A name in a Markdown table cell: HTML escaped, no column break, no line break."""
    return html.escape(name).replace("|", "&#124;").replace("\n", " ")


def render_leaderboard(board: ratings.Leaderboard, lang: str = "en") -> str:
    """The ratings table, then the pairs (votes, win rate), then how it was computed; every name escaped."""
    if not board.ratings:
        return msg("cmp_board_empty", lang)
    h = lambda k: msg(k, lang)  # noqa: E731
    lines = [f"| {h('cmp_h_rank')} | {h('cmp_h_name')} | {h('cmp_h_rating')} | {h('cmp_h_ci')} | "
             f"{h('cmp_h_battles')} | {h('cmp_h_wlt')} |", "| --- | --- | --- | --- | --- | --- |"]
    for r in board.ratings:
        # a few votes give a narrow-looking interval that means nothing (one vote: "1095 – 1095"): such a row is
        # marked preliminary instead, as LMArena does, and its rank not given
        few = r.battles < PRELIMINARY_BATTLES
        ci = msg("cmp_preliminary", lang, n=r.battles) if few else f"{r.lower:.0f} – {r.upper:.0f}"
        lines.append(f"| {'–' if few else r.rank} | {_cell(r.name)} | {r.rating:.0f} | {ci} | {r.battles} | "
                     f"{r.wins} / {r.losses} / {r.ties} |")
    names = [r.name for r in board.ratings]
    lines += ["", f"| {h('cmp_h_pair')} | {h('cmp_h_votes')} | {h('cmp_h_winrate')} |", "| --- | --- | --- |"]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if board.battles[a][b]:
                rate = board.win_rate[a][b]
                lines.append(f"| {_cell(a)} vs {_cell(b)} | {board.battles[a][b]} | "
                             f"{'–' if rate is None else f'{rate:.0%}'} |")
    note = msg("cmp_board_note", lang, votes=board.votes, rounds=board.rounds, seed=board.seed)
    if board.prior:
        note += msg("cmp_board_prior", lang, prior=f"{board.prior:g}")
    if not board.connected:
        note += msg("cmp_board_apart", lang)
    if board.unrated:
        note += msg("cmp_board_unrated", lang, n=board.unrated, max=MAX_RATED)
    if board.not_blind:
        note += msg("cmp_board_not_blind", lang, n=board.not_blind)
    lines += ["", note]
    return "\n".join(lines)
