import pytest

from llmdemo.config import TASK_DEFAULTS, ConfigError, GenerationConfig


def test_defaults_valid_and_greedy_flag():
    assert GenerationConfig(temperature=0).greedy
    assert not GenerationConfig(temperature=0.7).greedy
    assert TASK_DEFAULTS["translation"].greedy and TASK_DEFAULTS["summarization"].greedy


@pytest.mark.parametrize(
    "field,value",
    [("temperature", -1), ("temperature", 1e9), ("top_p", 2), ("top_p", 0), ("max_new_tokens", 10**9),
     ("max_new_tokens", 0), ("seed", -5), ("top_k", -1), ("repetition_penalty", 0), ("temperature", "hot"),
     ("max_new_tokens", 1.5), ("temperature", float("nan")), ("temperature", True), ("top_k", None)],
)
def test_out_of_range_names_field(field, value):
    with pytest.raises(ConfigError) as e:
        GenerationConfig(**{field: value})
    assert field in str(e.value)


def test_numeric_strings_are_accepted_and_converted():
    c = GenerationConfig(temperature="0.5", max_new_tokens="12", seed=3.0)
    assert c.temperature == 0.5 and c.max_new_tokens == 12 and c.seed == 3


def test_replace_ignores_none_and_revalidates():
    c = GenerationConfig().replace(temperature=None, top_k=5)
    assert c.top_k == 5 and c.temperature == GenerationConfig().temperature
    with pytest.raises(ConfigError):
        c.replace(top_p=1.5)


def test_round_trip_dict():
    c = GenerationConfig(stop=("\n",), seed=7)
    assert GenerationConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown"):
        GenerationConfig.from_dict({"temp": 1})
