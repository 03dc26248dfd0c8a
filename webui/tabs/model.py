"""The Model tab: what the loaded model is; on a local app, loading another one."""

from __future__ import annotations

import gradio as gr

from ..i18n import switch_js, t
from .context import TabContext


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    lang_en, lang_zh = ctx.lang_buttons
    with gr.Tab(t("tab_model"), id="model", elem_id="tab-model") as tab:
        m_info = gr.Markdown(h.model_info(), elem_id="model-info")
        # the server's text in the visitor's language: at load, and when the switch is used (its JS sets
        # the cookie the handler reads, before the request goes out)
        ctx.lang_events = [
            ctx.demo.load(h.model_info, None, [m_info], js=switch_js(None), queue=False, **ctx.private),
            lang_en.click(h.model_info, None, [m_info], js=switch_js("en"), queue=False, **ctx.private),
            lang_zh.click(h.model_info, None, [m_info], js=switch_js("zh-CN"), queue=False, **ctx.private)]
        # on a hosted app the operator chose the model: visitors see it, and cannot swap it for everyone
        m_preset = gr.Dropdown(h.preset_choices(), value=h.loaded_preset(), label=t("preset"),
                               visible=not settings.hosted, elem_id="model-preset")
        m_custom = gr.Textbox(label=t("custom"), placeholder=t("custom_ph"), visible=not settings.hosted,
                              elem_id="model-custom")
        m_go = gr.Button(t("load"), variant="primary", visible=not settings.hosted, elem_id="model-load")
        gr.Markdown(t("hosted_note") if settings.hosted else t("load_note"), elem_classes="stats")
        # choosing a preset means that preset: the box (which wins when filled in) is emptied
        m_preset.change(lambda: "", None, [m_custom], queue=False, **ctx.private)
        # the box is emptied as loading starts (the name is in the progress and in any error message),
        # so a failed name never stays to win over the next preset chosen
        m_name = gr.State("")
        # the load writes to a hidden state, then the info is shown again: a failed load is a toast, and the
        # model's details are not left marked "Error" (the old model is still loaded); the picker shows the
        # model that is loaded, not the name that failed. The steps after a failure run too (.then).
        m_loaded = gr.State(None)
        m_go.click(lambda c: ("", c), [m_custom], [m_custom, m_name], queue=False, **ctx.private).then(
            h.load_model, [m_preset, m_name], [m_loaded], **ctx.private,
            concurrency_id="load", concurrency_limit=1).then(
            h.model_info, None, [m_info], **ctx.private, queue=False).then(
            lambda: h.loaded_preset(), None, [m_preset], **ctx.private, queue=False).then(
            ctx.model_line_text, None, [ctx.model_line], **ctx.private, queue=False)
    return tab
