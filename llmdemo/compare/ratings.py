"""The leaderboard from blind votes: Bradley-Terry ratings on the Elo scale, as LMArena computes them.

LMArena's ``compute_mle_elo`` fits a logistic regression without intercept or penalty on the
pairwise outcomes, ``P(a beats b) = 1 / (1 + BASE ** ((R_b - R_a) / SCALE))``, each tie counted as
half a win each way (they duplicate the rows and label a tie once for each side), "both bad" as a
tie, and reports ``R = SCALE * coef + INIT_RATING`` with 95% intervals from the 2.5 and 97.5
percentiles over bootstrap resamples of the votes. This is that maximum-likelihood fit, by Newton's
method in numpy (no scikit-learn). Their fit starts from zero, so the ratings come out centred:
the mean rating is INIT_RATING (they then shift to an anchor model that this project does not have).

With two contestants the fit has a closed form: the rating gap is ``SCALE * log_BASE(wins_a / wins_b)``.

>>> votes = [{"sides": ["x", "y"], "winner": "x"}] * 3 + [{"sides": ["y", "x"], "winner": "y"}]
>>> board = leaderboard(votes, rounds=200, seed=0)
>>> [(r.name, round(r.rating, 1)) for r in board.ratings]    # 400 * log10(3 / 1) = 190.8 apart
[('x', 1095.4), ('y', 904.6)]

Votes on three or four contestants count as pairwise outcomes: the winner beat each of the
others (the others are not compared with one another); a tie or "both bad" is a tie for every pair.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
FALLBACK_PRIOR = 1.0  # virtual ties per pair that met, where the plain fit has no finite answer (see leaderboard)


class NotEstimable(ValueError):
    """The maximum-likelihood ratings are infinite: some group of contestants never lost (or never won)
    against the rest, so nothing bounds their gap. A prior of virtual ties makes them finite."""


def pairwise(vote: dict[str, Any]) -> list[tuple[str, str, float]]:
    """The pairwise outcomes one vote stands for, ``(a, b, score of a)``: 1 a win, 0.5 a tie.

    >>> pairwise({"sides": ["p", "q", "r"], "winner": "q"})
    [('q', 'p', 1.0), ('q', 'r', 1.0)]
    >>> pairwise({"sides": ["p", "q"], "winner": None})
    [('p', 'q', 0.5)]
    """
    names = list(vote["sides"])
    winner = vote.get("winner")
    if winner is None:
        return [(a, b, 0.5) for i, a in enumerate(names) for b in names[i + 1:]]
    return [(winner, b, 1.0) for b in names if b != winner]


def fit_bradley_terry(scores: np.ndarray, prior: float = 0.0, tol: float = 1e-10) -> np.ndarray:
    """Elo-scale ratings maximising the Bradley-Terry likelihood of a score matrix.

    ``scores[i, j]`` is what contestant i scored against j (1 a win, 0.5 a tie)   # (P, P)
    ``prior``: virtual ties added to every pair that met (0: the plain MLE, LMArena's).
    Ratings are centred on INIT_RATING within each group of contestants linked by games (groups
    that never met are not comparable). Raises NotEstimable where the plain MLE is infinite.
    """
    s = np.array(scores, dtype=np.float64)
    np.fill_diagonal(s, 0.0)
    games = s + s.T  # (P, P)
    if prior:
        s = s + (games > 0) * (prior / 2)
        games = s + s.T
    if not _estimable(s, games):
        raise NotEstimable("some contestants never lost (or never won) against the others")
    theta = np.zeros(len(s))  # natural-log strengths: logit P(i beats j) = theta_i - theta_j
    total = games.sum() / 2

    def loglik(t: np.ndarray) -> float:
        d = t[:, None] - t[None, :]
        return float(-(s * np.logaddexp(0.0, -d)).sum())  # sum of s_ij * log sigmoid(d_ij)

    for _ in range(200):
        d = theta[:, None] - theta[None, :]
        p = 0.5 * (1.0 + np.tanh(d / 2))  # sigmoid, without overflow
        grad = (s - games * p).sum(axis=1)
        if np.abs(grad).max() <= tol * max(total, 1.0):
            break
        w = games * p * (1 - p)
        neg_hessian = np.diag(w.sum(axis=1)) - w  # a graph Laplacian: singular along each group's constant
        step = np.linalg.lstsq(neg_hessian, grad, rcond=None)[0]  # the least-norm step keeps each group centred
        f0, t = loglik(theta), 1.0
        while loglik(theta + t * step) < f0 and t > 1e-6:  # the likelihood is concave: halve until it rises
            t /= 2
        theta = theta + t * step
    for group in _groups(games):
        theta[group] -= theta[group].mean()
    return INIT_RATING + SCALE / math.log(BASE) * theta


@dataclass(frozen=True)
class Rating:
    name: str
    rating: float  # the fit on all votes
    lower: float  # 2.5th percentile over the bootstrap rounds
    upper: float  # 97.5th percentile
    rank: int  # 1 + the contestants whose lower bound is above this one's upper bound (LMArena's ranking)
    battles: int  # pairwise outcomes it took part in
    wins: int
    losses: int
    ties: int  # "both bad" included


@dataclass(frozen=True)
class Leaderboard:
    ratings: list[Rating]  # best first
    votes: int
    battles: dict[str, dict[str, int]]  # battles[a][b]: pairwise outcomes between a and b (ties included)
    wins: dict[str, dict[str, int]]  # wins[a][b]: times a beat b
    win_rate: dict[str, dict[str, float | None]]  # wins[a][b] / (wins[a][b] + wins[b][a]); None where none was decisive
    rounds: int  # bootstrap rounds
    seed: int
    prior: float  # virtual ties per pair in the fit: 0 is the plain MLE
    fallback_rounds: int  # bootstrap rounds refit with FALLBACK_PRIOR (with prior 0: the resample left someone unbeaten)
    connected: bool  # False: some groups never met, their ratings are centred separately and not comparable
    unrated: int = 0  # contestants left out of the fit (fewer battles than the max_rated best-known ones)
    not_blind: int = 0  # votes on comparisons that named their sides before the vote: never counted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        """Names are escaped for Markdown tables (|) only: a renderer of HTML must escape them too."""
        if not self.ratings:
            return "No votes yet."
        lines = ["| Rank | Contestant | Rating | 95% interval | Battles | W / L / T |", "| --- | --- | --- | --- | --- | --- |"]
        for r in self.ratings:
            name = r.name.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r.rank} | {name} | {r.rating:.0f} | {r.lower:.0f} to {r.upper:.0f} | {r.battles} | "
                         f"{r.wins} / {r.losses} / {r.ties} |")
        lines.append("")
        lines.append(self._footer())
        return "\n".join(lines)

    def to_text(self) -> str:
        if not self.ratings:
            return "No votes yet."
        width = max(10, *(len(r.name) for r in self.ratings))
        lines = [f"{'rank':>4}  {'contestant':{width}}  {'rating':>6}  {'95% interval':>13}  {'battles':>7}  W/L/T"]
        for r in self.ratings:
            interval = f"{r.lower:.0f}-{r.upper:.0f}"
            lines.append(f"{r.rank:>4}  {r.name:{width}}  {r.rating:6.0f}  {interval:>13}  "
                         f"{r.battles:>7}  {r.wins}/{r.losses}/{r.ties}")
        names = [r.name for r in self.ratings]
        lines.append("")
        lines.append("win rate of row over column (decisive battles only; battles in brackets):")
        lines.append(" " * width + "".join(f"  {n[:12]:>12}" for n in names))
        for a in names:
            cells = []
            for b in names:
                rate = self.win_rate[a][b]
                cells.append(f"  {'':>12}" if a == b else f"  {('-' if rate is None else f'{rate:.2f}'):>6} ({self.battles[a][b]:>3})")
            lines.append(f"{a:{width}}" + "".join(cells))
        lines.append("")
        lines.append(self._footer())
        return "\n".join(lines)

    def _footer(self) -> str:
        note = (f"{self.votes} votes; Bradley-Terry (Elo scale: {SCALE:g} points = {BASE:g}x odds, mean {INIT_RATING:g}); "
                f"95% intervals from {self.rounds} bootstrap rounds, seed {self.seed}")
        if self.prior:
            note += f"; {self.prior:g} virtual tie(s) per pair (too few votes for the plain fit)"
        if self.fallback_rounds:
            note += f"; {self.fallback_rounds} bootstrap round(s) left someone unbeaten and were refit with {FALLBACK_PRIOR:g} virtual tie(s)"
        if not self.connected:
            note += "; some contestants never met: ratings of separate groups are not comparable"
        if self.unrated:
            note += f"; {self.unrated} contestant(s) in fewer votes not rated"
        if self.not_blind:
            note += f"; {self.not_blind} vote(s) on comparisons that were not blind not counted"
        return note


def leaderboard(votes: Iterable[dict[str, Any]], rounds: int = 1000, seed: int = 0,
                prior: float | None = None, max_rated: int | None = None) -> Leaderboard:
    """Ratings with bootstrap intervals from votes (dicts with "sides" and "winner", as VoteStore.votes()).

    Only blind votes count (a vote whose ``"blind"`` is false saw the names first; votes without the key
    count). ``max_rated`` bounds the cost whatever the number of contestants: only that many, those in
    the most votes, are fitted (each bootstrap round solves a P x P system), and the outcomes between
    them; the rest are counted in ``unrated``.

    ``prior=None`` fits the plain MLE, LMArena's, when it is finite, else FALLBACK_PRIOR virtual ties
    per pair (early on, when a contestant has not yet lost, its plain rating is infinite).
    Each bootstrap round resamples the votes with replacement (numpy Generator seeded with ``seed``)
    and refits with the same prior; a contestant absent from a round is left out of that round.
    """
    votes = list(votes)
    counted = [v for v in votes if v.get("blind", True)]
    not_blind = len(votes) - len(counted)
    votes, unrated = _rated(counted, max_rated)
    outcomes = [pairwise(v) for v in votes]
    names = sorted({n for v in votes for n in v["sides"]})
    index = {n: i for i, n in enumerate(names)}
    vi, ii, jj, ss = [], [], [], []  # one row per pairwise outcome: its vote, the two contestants, i's score
    for k, pairs in enumerate(outcomes):
        for a, b, score in pairs:
            vi.append(k), ii.append(index[a]), jj.append(index[b]), ss.append(score)
    vi, ii, jj, ss = np.array(vi, dtype=np.int64), np.array(ii, dtype=np.int64), np.array(jj, dtype=np.int64), np.array(ss)
    p = len(names)

    def score_matrix(weights: np.ndarray) -> np.ndarray:  # weights: how often each vote is drawn, (V,)
        s = np.zeros((p, p))
        np.add.at(s, (ii, jj), ss * weights[vi])
        np.add.at(s, (jj, ii), (1 - ss) * weights[vi])
        return s

    full = score_matrix(np.ones(len(votes)))
    if prior is None:
        prior = 0.0 if _estimable(full, full + full.T) else FALLBACK_PRIOR
    point = fit_bradley_terry(full, prior) if p else np.zeros(0)

    rng = np.random.default_rng(seed)
    boot = np.full((rounds, p), np.nan)
    fallback = 0
    for r in range(rounds if votes else 0):
        counts = np.bincount(rng.integers(0, len(votes), size=len(votes)), minlength=len(votes)).astype(np.float64)
        s = score_matrix(counts)
        present = np.flatnonzero((s + s.T).sum(axis=1) > 0)
        sub = s[np.ix_(present, present)]
        try:
            boot[r, present] = fit_bradley_terry(sub, prior)
        except NotEstimable:  # only with prior 0: this resample left someone unbeaten
            boot[r, present] = fit_bradley_terry(sub, FALLBACK_PRIOR)
            fallback += 1
    with np.errstate(all="ignore"):
        lower = np.nanpercentile(boot, 2.5, axis=0) if rounds and p else point
        upper = np.nanpercentile(boot, 97.5, axis=0) if rounds and p else point

    wins = np.zeros((p, p), dtype=np.int64)
    ties = np.zeros((p, p), dtype=np.int64)
    for a, b, score in (o for pairs in outcomes for o in pairs):
        if score == 1.0:
            wins[index[a], index[b]] += 1
        else:
            ties[index[a], index[b]] += 1
            ties[index[b], index[a]] += 1
    battles = wins + wins.T + ties
    order = sorted(range(p), key=lambda i: (-point[i], names[i]))
    ratings = []
    for i in order:
        rank = 1 + sum(1 for j in range(p) if j != i and lower[j] > upper[i])
        ratings.append(Rating(names[i], float(point[i]), float(lower[i]), float(upper[i]), rank,
                              int(battles[i].sum()), int(wins[i].sum()), int(wins[:, i].sum()), int(ties[i].sum())))

    def table(f):
        return {names[a]: {names[b]: f(a, b) for b in order} for a in order}

    decisive = wins + wins.T
    return Leaderboard(
        ratings=ratings, votes=len(votes),
        battles=table(lambda a, b: int(battles[a, b])), wins=table(lambda a, b: int(wins[a, b])),
        win_rate=table(lambda a, b: float(wins[a, b] / decisive[a, b]) if a != b and decisive[a, b] else None),
        rounds=rounds, seed=seed, prior=float(prior), fallback_rounds=fallback, connected=len(_groups(battles)) <= 1,
        unrated=unrated, not_blind=not_blind,
    )


def _rated(votes: list[dict[str, Any]], max_rated: int | None) -> tuple[list[dict[str, Any]], int]:
    """The votes among the ``max_rated`` contestants in the most votes (ties broken by name), each cut to
    those sides; a vote won by a contestant left out says nothing about the others and is dropped."""
    seen = Counter(n for v in votes for n in v["sides"])
    if max_rated is None or len(seen) <= max_rated:
        return votes, 0
    keep = set(sorted(seen, key=lambda n: (-seen[n], n))[:max_rated])
    kept = []
    for v in votes:
        sides = [n for n in v["sides"] if n in keep]
        winner = v.get("winner")
        if len(sides) >= 2 and (winner is None or winner in keep):
            kept.append({**v, "sides": sides})
    return kept, len(seen) - max_rated


def _groups(games: np.ndarray) -> list[np.ndarray]:
    """Contestants linked by games, each group as an index array."""
    p = len(games)
    seen = np.zeros(p, dtype=bool)
    groups = []
    for start in range(p):
        if seen[start]:
            continue
        stack, members = [start], []
        seen[start] = True
        while stack:
            i = stack.pop()
            members.append(i)
            for j in np.flatnonzero(games[i] > 0):
                if not seen[j]:
                    seen[j] = True
                    stack.append(j)
        groups.append(np.array(sorted(members)))
    return groups


def _estimable(s: np.ndarray, games: np.ndarray) -> bool:
    """Whether the plain MLE is finite (Zermelo, Ford): within each group, every contestant reaches
    every other along "scored something against" edges, i.e. no subgroup only won or only lost."""
    beat = s > 0  # (P, P): i scored against j (a win or a tie)
    for group in _groups(games):
        sub = beat[np.ix_(group, group)]
        for edges in (sub, sub.T):  # reachable from the first member, forwards and backwards
            reached = np.zeros(len(group), dtype=bool)
            reached[0] = True
            frontier = reached.copy()
            while frontier.any():
                frontier = edges[frontier].any(axis=0) & ~reached
                reached |= frontier
            if not reached.all():
                return False
    return True
