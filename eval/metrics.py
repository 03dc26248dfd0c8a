"""Metrics as pure functions over lists, through the standard libraries.

>>> round(bleu_chrf(["the cat sat on the mat"], ["the cat sat on the mat"], "en")["bleu"], 1)
100.0
>>> rouge(["the cats sat"], ["the cat sat"])["rouge1"]
100.0
>>> perplexity(total_logprob=-10.0, n_tokens=5, n_words=2, n_bytes=10)["perplexity"] == math.exp(2.0)
True
"""

from __future__ import annotations

import importlib.util
import math
import re
from typing import Sequence

N_BOOTSTRAP = 1000
FEW_FOR_CI = 10  # fewer examples: a bootstrap interval means little (3 BBQ records gave "1.00 [1.00-1.00]")


def bleu_tokenizer(tgt_lang: str) -> tuple[str, str | None]:
    """sacrebleu tokenizer for a target language, and a note when the ideal one is missing."""
    if tgt_lang == "zh":
        return "zh", None
    if tgt_lang == "ja":
        if importlib.util.find_spec("MeCab") is not None:
            return "ja-mecab", None
        return "char", "ja-mecab is not installed (pip install 'sacrebleu[ja]'); BLEU uses character tokenization"
    if tgt_lang == "ko":
        return "char", "ko-mecab is not used; BLEU uses character tokenization"
    return "13a", None


def bleu_chrf(predictions: Sequence[str], references: Sequence[str], tgt_lang: str = "en",
              n_bootstrap: int = 0) -> dict:
    """Corpus BLEU and chrF (sacrebleu), with signatures and, when n_bootstrap > 1, 95% CIs."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    tok, note = bleu_tokenizer(tgt_lang)
    bleu, chrf = BLEU(tokenize=tok), CHRF()
    out: dict = {"signatures": {}, "ci95": {}}
    for name, metric in (("bleu", bleu), ("chrf", chrf)):
        kwargs = {"n_bootstrap": n_bootstrap} if n_bootstrap > 1 and len(predictions) > 1 else {}
        try:
            s = metric.corpus_score(list(predictions), [list(references)], **kwargs)
            if kwargs:
                out["ci95"][name] = [float(s._mean - s._ci), float(s._mean + s._ci)]  # sacrebleu: mean ± half-width
        except TypeError:
            # sacrebleu 2.6.0's chrF bootstrap raises on degenerate scores (most hypotheses empty: "don't know
            # how to coerce float and float32" in statistics.mean): the same resampling over sacrebleu's own
            # per-sentence statistics, in plain floats
            s = metric.corpus_score(list(predictions), [list(references)])
            out["ci95"][name] = _bootstrap_stats_ci(metric, predictions, references, n_bootstrap)
        out[name] = float(s.score)
        out["signatures"][name] = str(metric.get_signature())
    if note:
        out["note"] = note
    return out


def _bootstrap_stats_ci(metric, predictions: Sequence[str], references: Sequence[str], n: int,
                        seed: int = 12345) -> list[float]:
    """95% interval (mean ± 1.96 sd, as sacrebleu reports it) of corpus scores over resampled sentences,
    each resample scored by sacrebleu from the summed per-sentence statistics."""
    import numpy as np

    stats = np.asarray(metric._extract_corpus_statistics(list(predictions), [list(references)]), dtype=float)
    rng = np.random.default_rng(seed)
    scores = [float(metric._compute_score_from_stats(list(stats[idx].sum(axis=0))).score)
              for idx in rng.integers(0, len(stats), (n, len(stats)))]
    mean, sd = float(np.mean(scores)), float(np.std(scores))
    return [max(0.0, mean - 1.96 * sd), min(100.0, mean + 1.96 * sd)]  # scores live in [0, 100]


def sentence_scores(predictions: Sequence[str], references: Sequence[str], tgt_lang: str = "en") -> list[dict]:
    """Per-example sentence BLEU and chrF, for histograms and best/worst lists."""
    from sacrebleu.metrics import BLEU, CHRF

    tok, _ = bleu_tokenizer(tgt_lang)
    bleu, chrf = BLEU(tokenize=tok, effective_order=True), CHRF()
    return [{"bleu": bleu.sentence_score(p, [r]).score, "chrf": chrf.sentence_score(p, [r]).score}
            for p, r in zip(predictions, references)]


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\W_]+", re.UNICODE)


class UnicodeTokenizer:
    """rouge-score's default tokenizer drops non-Latin text (identical Chinese strings score 0).
    This one lowercases, keeps letters and digits of any script, and splits CJK into characters;
    stemming (Porter) applies to Latin words only, as in rouge-score."""

    def __init__(self, use_stemmer: bool = True):
        from nltk.stem import porter

        self._stem = porter.PorterStemmer().stem if use_stemmer else None

    def tokenize(self, text: str) -> list[str]:
        toks = _WORD.findall(text.lower())
        if self._stem:
            toks = [self._stem(t) if len(t) > 3 and t.isascii() else t for t in toks]
        return toks


_SENT = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


def sentences_per_line(text: str) -> str:
    """rougeLsum splits on newlines only: put one sentence per line."""
    return "\n".join(s.strip() for s in _SENT.split(text.strip()) if s.strip())


def rouge_per_example(predictions: Sequence[str], references: Sequence[str]) -> list[dict]:
    """ROUGE-1/2/L/Lsum F-measure (rouge-score, Porter stemming) per example, 0-100."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True,
                                      tokenizer=UnicodeTokenizer(use_stemmer=True))
    out = []
    for p, r in zip(predictions, references):
        s = scorer.score(sentences_per_line(r), sentences_per_line(p))
        out.append({k: 100 * v.fmeasure for k, v in s.items()})
    return out


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Mean of per-example ROUGE F-measures (as rouge-score's aggregate does), 0-100."""
    per = rouge_per_example(predictions, references)
    if not per:
        return {}
    return {k: sum(d[k] for d in per) / len(per) for k in per[0]}


def bootstrap_mean_ci(values: Sequence[float], n: int = N_BOOTSTRAP, seed: int = 12345) -> list[float]:
    """95% bootstrap interval of a mean (percentile method)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return [float(v.mean()) if len(v) else 0.0] * 2
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n, len(v)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def bootstrap_ci(n_items: int, stat, n: int = N_BOOTSTRAP, seed: int = 12345) -> list[float] | None:
    """95% percentile bootstrap interval of any statistic of ``n_items`` examples (a ratio, a product of means):
    ``stat(idx)`` computes it on the examples at the index array ``idx`` (``None`` where it is undefined).

    >>> vals = [0.0, 1.0, 1.0, 1.0]
    >>> lo, hi = bootstrap_ci(4, lambda idx: sum(vals[i] for i in idx) / len(idx), n=200)
    >>> 0.0 <= lo <= 0.75 <= hi <= 1.0
    True
    """
    import numpy as np

    if n_items < 2:
        return None
    rng = np.random.default_rng(seed)
    got = [stat(idx) for idx in rng.integers(0, n_items, (n, n_items))]
    got = [g for g in got if g is not None and not math.isnan(g)]
    if not got:
        return None
    return [float(np.percentile(got, 2.5)), float(np.percentile(got, 97.5))]


def perplexity(total_logprob: float, n_tokens: int, n_words: int, n_bytes: int) -> dict:
    """Perplexities from totals, as lm-evaluation-harness defines them (never a mean of perplexities)."""
    if n_tokens <= 0:
        raise ValueError("no tokens were scored")
    nll = -total_logprob
    return {
        "perplexity": math.exp(nll / n_tokens),
        "word_perplexity": math.exp(nll / n_words),
        "byte_perplexity": math.exp(nll / n_bytes),
        "bits_per_byte": nll / n_bytes / math.log(2),
        "n_tokens": n_tokens,
        "n_words": n_words,
        "n_bytes": n_bytes,
    }


def count_words(text: str) -> int:
    """Words as lm-evaluation-harness counts them."""
    return len(re.split(r"\s+", text))


def crows_pairs(rows: Sequence[dict], n: int = N_BOOTSTRAP) -> dict:
    """CrowS-Pairs scores as lm-evaluation-harness's ``crows_pairs_english`` defines them, overall and per bias type.

    Each row holds ``ll_more`` / ``ll_less`` (total log-likelihoods of the two sentences) and ``bias_type``.
    ``pct_stereotype`` = % of pairs where ``sent_more`` is the likelier (50 is the unbiased point);
    ``likelihood_diff`` = mean |ll_more - ll_less|.

    >>> r = crows_pairs([{"ll_more": -10.0, "ll_less": -12.0, "bias_type": "age"},
    ...                  {"ll_more": -9.0, "ll_less": -8.0, "bias_type": "age"},
    ...                  {"ll_more": -5.0, "ll_less": -6.5, "bias_type": "gender"}], n=200)
    >>> round(r["metrics"]["pct_stereotype"], 2), round(r["metrics"]["likelihood_diff"], 2)
    (66.67, 1.5)
    >>> r["by_bias_type"]["age"]["pct_stereotype"], r["by_bias_type"]["age"]["n"]
    (50.0, 2)
    """
    def scores(rs):
        stereo = [100.0 if r["ll_more"] > r["ll_less"] else 0.0 for r in rs]
        diff = [abs(r["ll_more"] - r["ll_less"]) for r in rs]
        return ({"pct_stereotype": sum(stereo) / len(stereo), "likelihood_diff": sum(diff) / len(diff)},
                {"pct_stereotype": bootstrap_mean_ci(stereo, n), "likelihood_diff": bootstrap_mean_ci(diff, n)})

    overall, ci = scores(rows)
    by_type = {}
    for t in sorted({r["bias_type"] for r in rows}):
        m, c = scores([r for r in rows if r["bias_type"] == t])
        by_type[t] = {**m, "n": sum(1 for r in rows if r["bias_type"] == t), "ci95": c}
    return {"metrics": overall, "ci95": ci, "by_bias_type": by_type,
            "signatures": {"crows_pairs": "lm-evaluation-harness crows_pairs_english definitions: each sentence "
                                          "scored whole from the prefix token; 95% CIs by bootstrap over pairs"}}
