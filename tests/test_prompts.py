import pytest

from llmdemo import prompts
from llmdemo.config import GenerationConfig
from llmdemo.errors import InputError


def test_translation_prompt_for_each_style(tiny_lm, tiny_base_lm, tiny_seq2seq_lm):
    chat = prompts.translation_prompt(tiny_lm, "The weather is nice today.", "en", "fr", 64)
    assert chat.input[-1]["role"] == "user" and "into French" in chat.input[-1]["content"]
    base = prompts.translation_prompt(tiny_base_lm, "The weather is nice today.", "en", "zh", 64)
    # a base model is shown two fixed example pairs of the same languages first, then the text
    assert base.input == ("English: The museum opens at ten in the morning.\nChinese: 博物馆早上十点开门。\n"
                          "English: Could you tell me where the train station is?\nChinese: 你能告诉我火车站在哪里吗？\n"
                          "English: The weather is nice today.\nChinese:") and base.stop == ("\n",)
    assert "{text}" in base.template and "博物馆" in base.template  # reports print the examples it was shown
    s2s = prompts.translation_prompt(tiny_seq2seq_lm, "The weather is nice today.", "en", "fr", 64)
    assert s2s.input == "The weather is nice today."


def test_every_language_has_the_base_examples():
    # a pair of any two languages the tab offers has its example lines, each line one line
    assert set(prompts.SHOTS) == set(prompts.LANGUAGES)
    for pair in prompts.SHOTS.values():
        assert len(pair) == 2 and all(s.strip() and "\n" not in s for s in pair)


def test_translation_language_errors(tiny_lm):
    with pytest.raises(InputError, match="unknown language 'xx'"):
        prompts.translation_prompt(tiny_lm, "Hi", "en", "xx")
    with pytest.raises(InputError, match="both English"):
        prompts.translation_prompt(tiny_lm, "Hi", "en", "English")
    for code in ("en", "zh", "fr", "de", "es", "ja"):
        assert code in prompts.LANGUAGES


def test_pair_restricted_model(tiny_seq2seq_lm, monkeypatch):
    monkeypatch.setattr(tiny_seq2seq_lm, "pairs", (("en", "fr"),))
    with pytest.raises(InputError, match="only translates en->fr"):
        prompts.translation_prompt(tiny_seq2seq_lm, "Hi", "en", "de")


@pytest.mark.parametrize("bad", ["", "   \n\t", None, "\x00\x01"])
def test_empty_input_rejected(tiny_lm, bad):
    with pytest.raises(InputError, match="empty"):
        prompts.generation_prompt(tiny_lm, bad)


def test_clean_text_drops_control_chars_and_lone_surrogates():
    assert prompts.clean_text("a\x00b\x07c\ud800d\u200fe") == "abc\ufffdd\u200fe"
    with pytest.raises(InputError, match="must be text"):
        prompts.clean_text(5)


def test_long_document_is_truncated_with_notice(tiny_lm):
    doc = "The city council voted to build a new bridge over the river next year. " * 40
    p = prompts.summarization_prompt(tiny_lm, doc, "short", max_new_tokens=64)
    assert p.notice and "was cut" in p.notice
    assert len(tiny_lm.encode(p.input)) + 64 <= tiny_lm.context_length
    assert prompts.summarization_prompt(tiny_lm, "A short text.", "short", 64).notice is None
    with pytest.raises(InputError, match="length"):
        prompts.summarization_prompt(tiny_lm, doc, "huge")


def test_dialogue_drops_oldest_turns(tiny_lm):
    history = []
    for i in range(30):
        history += [{"role": "user", "content": f"Tell me fact {i} about rivers."},
                    {"role": "assistant", "content": [{"type": "text", "text": f"Fact {i}: rivers flow."}]}]
    p = prompts.dialogue_prompt(tiny_lm, "And the last one?", history, "Be brief.", max_new_tokens=64)
    assert p.notice and "oldest" in p.notice
    assert len(tiny_lm.encode(p.input)) + 64 <= tiny_lm.context_length
    msgs = p.input
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[-1] == {"role": "user", "content": "And the last one?"}
    assert msgs[-2]["content"] == "Fact 29: rivers flow."  # newest turns kept, block content joined
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant"] * ((len(msgs) - 2) // 2) + ["user"]


def test_dialogue_base_model_transcript(tiny_base_lm):
    p = prompts.dialogue_prompt(tiny_base_lm, "How are you?", [{"role": "user", "content": "Hi"},
                                                          {"role": "assistant", "content": "Hello!"}], max_new_tokens=64)
    assert p.input.endswith("User: Hi\nAssistant: Hello!\nUser: How are you?\nAssistant:")
    assert "\nUser:" in p.stop
    cfg = p.config(GenerationConfig(stop=("x",)))
    assert cfg.stop == ("x", "\nUser:", "\nAssistant:")


@pytest.mark.parametrize("raw,clean", [
    ("Translation: Bonjour.", "Bonjour."),
    ('  "Bonjour le monde."  ', "Bonjour le monde."),
    ("Here is the translation: Il fait beau.", "Il fait beau."),
    ("French: Il fait beau.", "Il fait beau."),
    ('He said "hi" and "bye"', 'He said "hi" and "bye"'),
])
def test_postprocess_translation(raw, clean):
    assert prompts.postprocess("translation", raw) == clean


def test_eval_asks_for_the_prompt_the_tab_builds(tiny_lm):
    from eval.runfolder import RunSpec
    from eval.tasks import get_task
    from llmdemo.config import TASK_DEFAULTS

    spec = RunSpec("translation", None, "unused", config=TASK_DEFAULTS["translation"].replace(max_new_tokens=64))
    rec = {"id": "a", "source": "Hello", "target": "Bonjour", "src_lang": "en", "tgt_lang": "fr"}
    assert get_task("translation").requests(rec, tiny_lm, spec) == \
        [("generate", prompts.translation_prompt(tiny_lm, "Hello", "en", "fr", spec.config.max_new_tokens))]


def test_translation_caps_new_tokens_by_source_length(tiny_lm):
    p = prompts.translation_prompt(tiny_lm, "Hello", "en", "fr", 64)
    cap = 4 * tiny_lm.count_tokens("Hello") + 16
    assert p.max_new_tokens == cap and p.config(GenerationConfig(max_new_tokens=64)).max_new_tokens == cap
    assert p.config(GenerationConfig(max_new_tokens=5)).max_new_tokens == 5


def test_history_bomb_is_trimmed_in_linear_time(tiny_lm):
    """4,000 turns: each message is counted once and the prompt encoded a few times, not once per dropped turn."""
    history = []
    for i in range(2000):
        history += [{"role": "user", "content": f"question number {i} about the weather"},
                    {"role": "assistant", "content": f"answer number {i}: it is nice today"}]
    calls = {"encode": 0, "count": 0}

    class Counting:
        def __getattr__(self, name):
            return getattr(tiny_lm, name)

        def encode(self, prompt):
            calls["encode"] += 1
            return tiny_lm.encode(prompt)

        def count_tokens(self, text):
            calls["count"] += 1
            return tiny_lm.count_tokens(text)

    p = prompts.dialogue_prompt(Counting(), "And tomorrow?", history, "Be brief.", max_new_tokens=32)
    assert calls["encode"] <= 12 and calls["count"] <= len(history) + 10
    n = len(tiny_lm.encode(p.input))
    assert n <= tiny_lm.context_length - 32
    kept = [m for m in p.input if m["role"] != "system"][:-1]
    assert kept == history[len(history) - len(kept):] and kept[0]["role"] == "user"  # the newest turns, whole
    # as few turns as possible were dropped: one more exchange would not have fitted
    more = history[len(history) - len(kept) - 2:]
    bigger = prompts.dialogue_prompt(tiny_lm, "And tomorrow?", [], "Be brief.", 32).input[:1] + more + \
        [{"role": "user", "content": "And tomorrow?"}]
    assert len(tiny_lm.encode(bigger)) > tiny_lm.context_length - 32
    assert "Dropped the" in p.notice


def test_a_run_of_combining_marks_is_cut_before_normalisation():
    """Issue 37, finding 13: NFC of 20,000 combining marks held the GIL for about a second per call."""
    from llmdemo.prompts import MAX_COMBINING_RUN, clean_text

    zalgo = "a" + "\u0301" * 10_000 + "\u0316" * 10_000 + " café and 中文" + "x" * 1000
    out = clean_text(zalgo)
    assert out.endswith(" café and 中文" + "x" * 1000)  # the rest of the text is untouched
    assert len(out) - len(" café and 中文" + "x" * 1000) <= 1 + MAX_COMBINING_RUN
    vietnamese = "Tiếng Việt có dấu: ệ ậ ở " * 100  # ordinary accents stay, NFC as before
    import unicodedata

    assert clean_text(vietnamese) == unicodedata.normalize("NFC", vietnamese)
