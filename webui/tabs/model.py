"""The Model tab: what the loaded model is; on a local app, loading another one."""

from __future__ import annotations

import html

import gradio as gr

from llmdemo import prompts
from llmdemo.backends.describe import describe as describe_forward
from llmdemo.errors import ModelLoadError, UserError, first_line
from llmdemo.presets import DEFAULT_MODEL, PRESETS, is_installed

from ..base import HandlerBase
from ..errors import friendly
from ..i18n import lang_of, switch_js, t
from .context import TabContext

MODEL_INFO_ZH = {"Model": "模型", "Source": "来源", "Backend": "后端", "Parameters": "参数量",
                 "Device / dtype": "设备 / 数据类型", "Generation forward": "生成所用前向", "Context length": "上下文长度",
                 "Load time": "加载时间", "File sha256 / revision": "文件 sha256 / 版本",
                 "Translation tab": "翻译标签页", "Licence": "许可", "Weights": "权重类型"}


def _display_location(info: dict) -> str:
    from pathlib import PurePath

    loc = str(info.get("location", ""))
    return PurePath(loc).name if info.get("kind") in ("gguf", "local") or loc.startswith("/") else loc


class ModelHandlers(HandlerBase):
    """The Model tab: the model's details, the presets, loading another model (local apps only)."""

    def model_info(self, request: gr.Request = None) -> str:
        info = self.host.lm.info()
        src = info.get("file_sha256") or info.get("revision") or ""
        rows = [
            ("Model", f"`{html.escape(info['name'])}` ({info.get('model_type')}, {info['style']} prompts)"),
            # the file or folder name only: no server path reaches a visitor
            ("Source", f"{info.get('kind')}: `{html.escape(_display_location(info))}`"),
            ("Backend", {"llamacpp": "llama.cpp (in-process)", "openai": f"OpenAI-compatible server "
                         f"(`{html.escape(str(info.get('served_model')))}`)"}.get(info.get("backend"), "transformers")),
            ("Parameters", f"{info['parameters'] / 1e6:,.1f} M" if info.get("parameters") else "n/a"),
            ("Device / dtype", f"{info['device']} / {info['dtype']} · {info['threads']} threads"),
            ("Generation forward", describe_forward(info)),
            # which weight type llama.cpp runs and why (the shipped one or its faster Q8_0 re-encoding)
            *([("Weights", html.escape(f"{info['weights']['type']}: {info['weights']['reason']}"))]
              if info.get("weights") else []),
            *([("Scoring", html.escape(info["engine"]["scoring"]))] if info.get("engine") else []),
            ("Context length", f"{info['context_length']:,} tokens"),
            ("Load time", f"{info['load_s']:.1f} s" if info.get("load_s") is not None else "n/a"),
        ]
        if src:
            rows.append(("File sha256 / revision", f"`{src[:16]}…`"))
        # the models beside it: the bundled ones a tab runs on (Translation: Gemma), within the memory budget
        offered, default = self.task_models("translation")
        if default != self.host.lm.name:
            st = self.companions.status()
            rows.append(("Translation tab", f"`{default}` (loaded when first used; models beside the loaded one "
                                            f"take {st['used_mb']} of {st['budget_mb']} MB)"))
        for name in dict.fromkeys([self.host.lm.name, *offered]):
            preset = PRESETS.get(name)
            if preset is not None and preset.terms and is_installed(preset):
                rows.append(("Licence", f"`{name}` is used under its terms: [{preset.terms}]({preset.terms})"))
        # a list, not a table: a two-column table had an empty header row and, on a phone, one letter per line
        names = MODEL_INFO_ZH if lang_of(request) == "zh" else {}
        return "\n".join(f"- **{names.get(k, k)}**: {v}" for k, v in rows)

    def preset_choices(self) -> list[tuple[str, str]]:
        return [(f"{p.name}: {p.description}", p.name) for p in PRESETS.values()]

    def loaded_preset(self) -> str:
        """What the preset picker shows: the loaded model's preset (the default when it is not a preset)."""
        return self.host.lm.name if self.host.lm.name in PRESETS else DEFAULT_MODEL

    @friendly
    def load_model(self, preset: str, custom: str = "", progress=gr.Progress(), request: gr.Request = None):
        """Load a preset (or, when not hosted, a hub id or local path); the previous model stays on failure.

        The box wins when filled in (its label says so); choosing a preset empties it, and the box is emptied
        after every attempt (layout.py), so a failed name never silently overrides the next preset.
        """
        name = (custom or "").strip() or preset or DEFAULT_MODEL
        if self.settings.hosted:  # one shared model, chosen by the operator: a visitor swapping it swaps everyone's
            raise prompts.InputError("input.operator_model")
        progress(0.05, desc=f"loading {name}…")
        try:
            self.host.swap(name, trust_remote_code=self.settings.trust_remote_code,
                           progress=lambda msg: progress(None, desc=msg))
        except Exception as e:  # noqa: BLE001 - the old model stays; the visitor is told why the new one did not load
            # a loading error's own cause, not its whole sentence: "could not load 'x': could not load model
            # 'x' from x: ..." said the same thing twice
            detail = e.params.get("detail", e) if isinstance(e, UserError) and e.code in ("model.load", "model.load_backend") \
                else (e if isinstance(e, UserError) else first_line(e))
            raise ModelLoadError("model.swap", name=name, detail=detail, current=self.host.lm.name) from None
        progress(1.0, desc="ready")
        return self.model_info(request)


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
