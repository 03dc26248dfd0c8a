"""The "Inside the model" tab: the tokens, the next-token distribution, surprisal, attention.

Its handlers (:class:`InsideHandlers`) are thin wrappers over llmdemo.internals (backends with the model's internals only: transformers).
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.errors import Notice
from llmdemo.host import ModelHost
from llmdemo.interface import INSIDE, require

from ..errors import friendly, warn
from ..i18n import lang_of, t
from ..safety import check_length
from ..settings import AppSettings
from .context import TabContext

INSIDE_MAX_TOKENS = 512  # what the Inside-the-model tab computes over (one uninterrupted call on the model)


N_CHIP_COLOURS = 8  # chip colours come from CSS classes (layout.py), one set for light and one for dark mode


def token_chips(toks) -> str:
    """Tokens as coloured chips with their ids (HTML-escaped: a token is never markup). The chips wrap."""
    chips = []
    for i, tok in enumerate(toks):
        shown = html.escape(tok.text).replace(" ", "␣").replace("\n", "↵") or "∅"
        chips.append(f"<span class='chip c{i % N_CHIP_COLOURS}' title='id {tok.id}'>{shown}<sub>{tok.id}</sub></span>")
    return "<div class='chips'>" + " ".join(chips) + "</div>"


class InsideHandlers:
    """The "Inside the model" tab: thin wrappers over llmdemo.internals."""

    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings

    @friendly
    def analyze(self, text: str, layer: Any = -1, head: Any = -1, theme: str = "light", request: gr.Request = None):
        from llmdemo import internals

        lm = self.host.lm
        require(lm, INSIDE, "Looking inside the model")
        text = prompts.clean_text(check_length(text, self.settings.max_input_chars))
        toks = internals.tokens(lm, text)
        summary = f"{len(toks):,} tokens for {len(text):,} characters ({len(text) / max(1, len(toks)):.1f} characters per token)"
        if len(toks) > INSIDE_MAX_TOKENS:
            # each look is one uninterrupted call on the model's thread: a 20,000-character text held every
            # visitor up for ~40 s, so the model looks at the first INSIDE_MAX_TOKENS tokens only
            text = "".join(t.text for t in toks[:INSIDE_MAX_TOKENS])
            summary += f" · the model looks at the first {INSIDE_MAX_TOKENS} tokens"
        if lm.is_encoder_decoder:
            warn(Notice("notice.encoder_decoder", model=lm.name), lang_of(request))
            return token_chips(toks), summary, {}, gr.update(choices=[]), [], None
        top, _ = internals.next_token_distribution(lm, text, k=10)
        labels = {f"{t.text!r} ({t.id})": p for t, p in top}
        scores = internals.surprisal(lm, text)
        hi = max((s for _, s in scores), default=1.0) or 1.0
        heat = [(t.text, s / hi) for t, s in scores]  # 0 = expected, 1 = most surprising in this text
        ppl = internals.perplexity_of(scores)
        summary += (f" · surprisal {sum(s for _, s in scores):.1f} nats in total, perplexity {ppl:.2f}"
                    " (the same number the Evaluation tab's perplexity would give for this text)")
        fig = self._heatmap(lm, text, layer, head, dark=theme == "dark", lang=lang_of(request))
        choices = [(f"{t.text!r} · {p:.1%}", t.id) for t, p in top]
        return (token_chips(toks), summary, labels, gr.update(choices=choices, value=choices[0][1]), heat, fig)

    def _heatmap(self, lm, text: str, layer: Any, head: Any, dark: bool = False, lang: str = "en"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from llmdemo import internals

        layer, head = int(layer), int(head)
        toks, att, notice = internals.attention(lm, text, layer=layer, head=None if head < 0 else head)
        if notice:
            warn(notice, lang)
        n = len(toks)
        # the page's theme (sent by the browser): a white figure in dark mode glared, light text on white was unreadable
        style = "dark_background" if dark else "default"
        with plt.style.context(style):
            side = min(8, 2.5 + n * 0.25)  # inches at 100 dpi: at most 800 px (a 1,200 px map overflowed a phone)
            fig, ax = plt.subplots(figsize=(side + 1.2, side))  # + the colour bar
            if dark:
                fig.patch.set_facecolor("#0b0f19")
                ax.set_facecolor("#0b0f19")
            self._draw(ax, toks, att, n, layer, head, lm)
            fig.tight_layout()
        return fig

    @staticmethod
    def _draw(ax, toks, att, n, layer, head, lm):
        from llmdemo import internals

        im = ax.imshow(att.numpy(), cmap="viridis", vmin=0)
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
        labels = [t.text.replace("\n", "↵") or "∅" for t in toks]
        if toks and toks[0].id == lm.prefix_token():  # the token the model reads before the text (SmolLM2's is
            labels[0] = "⟨start⟩"                     # <|im_start|>: a stray chat marker to a reader)
        if n <= 64:
            ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
            ax.set_yticks(range(n), labels, fontsize=8)
        ax.set_xlabel("attends to (earlier tokens)")
        ax.set_ylabel("token")
        ax.set_title(f"layer {layer if layer >= 0 else internals.layer_head_counts(lm)[0] + layer}, "
                     + ("average over heads" if head < 0 else f"head {head}"))

    @friendly
    def step(self, text: str, choice: Any, mode: str, seed: Any = None, request: gr.Request = None):
        """Append a token: the chosen candidate, the most likely one (greedy) or a sampled one."""
        from llmdemo import internals

        lm = self.host.lm
        require(lm, INSIDE, "Looking inside the model")
        text = prompts.clean_text(check_length(text, self.settings.max_input_chars))
        if lm.count_tokens(text) > INSIDE_MAX_TOKENS:
            raise prompts.InputError("input.step_long", n=INSIDE_MAX_TOKENS)
        if mode == "chosen":
            if choice in (None, ""):
                raise prompts.InputError("input.analyze_first")
            tok_id = int(choice)
        else:
            top, _ = internals.next_token_distribution(lm, text, k=50)
            if mode == "greedy":
                tok_id = top[0][0].id
            else:
                gen = torch_generator(seed)
                import torch

                probs = torch.tensor([p for _, p in top])
                tok_id = top[int(torch.multinomial(probs / probs.sum(), 1, generator=gen))][0].id
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"] + [tok_id]
        return lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


def torch_generator(seed: Any):
    import torch

    g = torch.Generator()
    if seed not in (None, ""):
        g.manual_seed(int(seed))
    else:
        g.seed()
    return g


# the page's theme, read in the browser and handed to the Inside tab's plot (the server cannot know it)
THEME_JS = "(...a) => [...a.slice(0, -1), document.body.classList.contains('dark') || " \
           "document.documentElement.classList.contains('dark') ? 'dark' : 'light']"


def build(ctx: TabContext) -> gr.Tab:
    settings = ctx.settings
    with gr.Tab(t("tab_inside"), id="inside", elem_id="tab-inside") as tab:
        ins = InsideHandlers(ctx.host, settings)
        from llmdemo.internals import layer_head_counts

        try:
            n_layers, n_heads = layer_head_counts(ctx.host.lm)
        except AttributeError:  # a backend that knows nothing of the model's shape (a server)
            n_layers, n_heads = 2, 2  # placeholders: the tab's handlers refuse with a message
        gr.Markdown(t("inside_intro"), elem_classes="stats")
        i_text = gr.Textbox("The capital of France is", label=t("text"), lines=2, elem_id="inside-in")
        with gr.Row():
            i_layer = gr.Slider(0, n_layers - 1, value=n_layers - 1, step=1, label=t("att_layer"), elem_id="inside-layer")
            i_head = gr.Slider(-1, n_heads - 1, value=-1, step=1, label=t("att_head"), elem_id="inside-head")
        i_go = gr.Button(t("analyze"), variant="primary", elem_id="inside-go")
        i_chips = gr.HTML(elem_id="inside-tokens")
        i_summary = gr.Markdown(elem_classes="stats")
        with gr.Row():
            i_next = gr.Label(label=t("next_probs"), num_top_classes=10)
            with gr.Column():
                i_choice = gr.Radio([], label=t("append_cand"))
                with gr.Row():
                    i_add = gr.Button(t("append_chosen"))
                    i_greedy = gr.Button(t("greedy_step"), elem_id="inside-greedy")
                    i_sample = gr.Button(t("sampled_step"))
        i_heat = gr.HighlightedText(label=t("surprisal"), show_legend=False, elem_id="inside-heat")
        i_att = gr.Plot(label=t("attention"), elem_id="inside-att")
        i_theme = gr.Textbox("light", visible=False)
        i_out = [i_chips, i_summary, i_next, i_choice, i_heat, i_att]
        i_in = [i_text, i_layer, i_head, i_theme]
        i_go.click(ins.analyze, i_in, i_out, js=THEME_JS, **ctx.private, **ctx.model_events)

        def stepper(mode):
            def step(text, choice, request: gr.Request = None):
                return ins.step(text, choice, mode, request=request)
            return step

        for btn, mode in ((i_add, "chosen"), (i_greedy, "greedy"), (i_sample, "sampled")):
            btn.click(stepper(mode), [i_text, i_choice], [i_text],
                      **ctx.private, **ctx.model_events).then(
                ins.analyze, i_in, i_out, js=THEME_JS, **ctx.private, **ctx.model_events)
    return tab
