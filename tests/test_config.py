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


def test_a_tiny_temperature_and_too_many_stop_strings_are_refused_by_code():
    """Issue 37, finding 19 and 21: temperature 1e-300 was an internal error (logits / T overflow); 1,000
    stop strings halved every row's speed."""
    from llmdemo.config import MAX_STOP_STRINGS, GenerationConfig, ConfigError

    for t in (1e-300, 0.001):
        with pytest.raises(ConfigError, match="temperature must be 0 \\(greedy\\) or at least 0.01") as e:
            GenerationConfig(temperature=t)
        assert e.value.code == "config.temperature_tiny"
    assert GenerationConfig(temperature=0.01).temperature == 0.01 and GenerationConfig(temperature=0).greedy
    with pytest.raises(ConfigError, match="at most 16 stop strings") as e:
        GenerationConfig(stop=tuple(str(i) for i in range(MAX_STOP_STRINGS + 1)))
    with pytest.raises(ConfigError):
        GenerationConfig(stop=("x" * 65,))
    assert len(GenerationConfig(stop=tuple(str(i) for i in range(MAX_STOP_STRINGS))).stop) == MAX_STOP_STRINGS
