"""The Dialogue tab: a chat with the model, kept in the browser's own storage across reloads."""

from __future__ import annotations

import gradio as gr

from llmdemo import prompts

from .. import tokenprobs
from ..controls import decoding_controls
from ..i18n import t
from .context import TabContext, examples

CHAT_EXAMPLES = ["Hello, who are you?", "What is the capital of France?", "Can you suggest a name for a cat?"]


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    with gr.Tab(t("tab_dialogue"), id="dialogue", elem_id="tab-dialogue") as tab:
        c_system = gr.Textbox(prompts.DEFAULT_SYSTEM_PROMPT, label=t("system"), lines=1)
        c_bot = gr.Chatbot(label=t("chat"), height=380, sanitize_html=True, buttons=["copy"], editable="user",
                           elem_id="chat-bot")
        with gr.Row(equal_height=True):
            c_in = gr.Textbox(label=t("message"), placeholder=t("message_ph"), info=t("message_info"),
                              scale=4, elem_id="chat-in")
            # Send becomes Stop while a reply runs
            c_go = gr.Button(t("send"), variant="primary", scale=1, min_width=80, elem_id="chat-send")
            c_stop = gr.Button(t("stop"), variant="stop", scale=1, min_width=80, visible=False,
                               elem_id="chat-stop")
        c_count = gr.Markdown(elem_classes="stats", elem_id="chat-count")
        c_tp_show = tokenprobs.switch("chat")  # the last reply's token probabilities: webui/tokenprobs.py
        with gr.Row():  # one row on a phone too (three full-width rows pushed the chat off the screen)
            c_retry = gr.Button(t("retry"), min_width=60, elem_id="chat-retry")
            c_undo = gr.Button(t("undo"), min_width=60, elem_id="chat-undo")
            c_clear = gr.Button(t("clear"), min_width=60, elem_id="chat-clear")
        c_stats = gr.Markdown(elem_classes="stats", elem_id="chat-stats")
        tp = tokenprobs.TokenProbHandlers(h)
        c_tokens, c_detail, c_tp_state = tokenprobs.panels("chat", c_tp_show, tp, ctx.light_events)
        ctx.export_row("chat", h.export_chat, [c_bot, c_system])
        ctx.inputs["chat-in"] = c_in  # an Evaluation row is sent here
        c_dec = decoding_controls("dialogue", settings)
        examples([[e] for e in CHAT_EXAMPLES], [c_in])
        turn_in = [c_bot, c_system, *c_dec]
        panels = [c_tokens, c_detail, c_tp_state]
        turn_out = [c_bot, c_in, c_stats, *panels]
        # each turn is the first step of its event (an edit's data reaches only that step), and ends idle;
        # the handlers are the tab's own (webui/chat.py) when the token probabilities are off
        c_events = ctx.page_event([c_go.click, c_in.submit], tp.chat, [c_in, *turn_in, c_tp_show], turn_out,
                                  "dialogue", c_go, c_stop)
        c_events += ctx.page_event([c_retry.click], tp.retry, [*turn_in, c_tp_show], turn_out, "dialogue", c_go,
                                   c_stop)
        # a failed edit puts the conversation back as it was (the page shows the edited text already)
        c_events += ctx.page_event([c_bot.edit], tp.edit, [*turn_in, c_tp_show], turn_out, "dialogue", c_go,
                                   c_stop, on_error=tp.edit_undone)
        # an alternative clicked: the last reply again from that token
        c_events += ctx.page_event([c_detail.click], tp.chat_branch, [c_tp_state, c_bot],
                                   [c_bot, c_stats, *panels], "dialogue", c_go, c_stop)
        # the API's /chat: the whole turn, message box emptied (the page uses chat_ui)
        ctx.api_endpoint(h.chat, [c_in, *turn_in], [c_bot, c_in, c_stats], "chat")
        ctx.stop_button("dialogue", c_stop, c_go, c_stats, c_events)
        c_undo_ev = c_undo.click(h.undo, [c_bot], [c_bot, c_in], **ctx.private, **ctx.light_events)
        c_clear_ev = c_clear.click(lambda: ([], "", ""), None, [c_bot, c_in, c_stats], **ctx.private, queue=False)
        for btn in (c_undo, c_clear):  # the panels and the stats line were of a reply that is gone
            btn.click(lambda: ("", "", None, ""), None, [*panels, c_stats], **ctx.private, queue=False)
        # the chat box's own trash icon is Clear too: the saved copy goes with it (it came back on reload)
        c_trash_ev = c_bot.clear(lambda: ("", "", "", None, ""), None, [c_in, *panels, c_stats], **ctx.private,
                                 queue=False)
        # the conversation survives a reload: kept in this browser's own storage (never on the server),
        # saved when a turn, Undo or Clear ends, put back when the page loads
        save_js = "(h) => { try { localStorage.setItem('llmdemo-chat', JSON.stringify(h || [])); } " \
                  "catch (e) { console.warn(e); } return [h]; }"
        for ev in [*c_events, c_undo_ev, c_clear_ev, c_trash_ev]:
            ev.then(None, [c_bot], None, js=save_js, queue=False, **ctx.private)
        # what comes back is checked and escaped on the server like any history (saved_chat)
        load_js = "() => { try { return [JSON.parse(localStorage.getItem('llmdemo-chat') || '[]')]; } " \
                  "catch (e) { return [[]]; } }"
        ctx.demo.load(h.saved_chat, [c_bot], [c_bot], js=load_js, queue=False, show_progress="hidden", **ctx.private)
        ctx.counter(c_in, c_count)
    return tab
