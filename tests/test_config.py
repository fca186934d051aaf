"""Config validation: one message naming the key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradcode.config import ConfigError, ExperimentConfig, load_config, parse_config, parse_params

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_defaults():
    cfg = parse_config({})
    assert isinstance(cfg, ExperimentConfig)
    assert (cfg.workers, cfg.backend, cfg.problem.kind) == (12, "local", "logistic_regression")
    assert cfg.problem.dataset == "breast_cancer"
    assert cfg.delays.model == "shifted_exponential" and cfg.delays.slow_workers == (3, 8)
    assert cfg.schemes == () and cfg.target_loss is None


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_are_valid(path):
    cfg = load_config(path, single=path.name == "run.toml")
    assert cfg.rounds >= 1


def test_example_compare_contents():
    cfg = load_config(EXAMPLES / "compare.toml")
    assert [s.code for s in cfg.schemes] == ["uncoded", "ignore_stragglers",
                                             "fractional_repetition", "expander"]
    assert cfg.schemes[3].r == 10 and cfg.schemes[3].wait == "first"


@pytest.mark.parametrize("raw, needles", [
    ({"wokers": 3}, ["unknown key 'wokers'", "allowed keys:", "workers"]),
    ({"problem": {"knd": "x"}}, ["unknown key 'problem.knd'", "kind"]),
    ({"delays": {"sigma": 1}}, ["unknown key 'delays.sigma'", "shift"]),
    ({"schemes": [{"code": "uncoded", "colour": 1}]}, ["schemes[0].colour", "decoder"]),
    ({"backend": "gpu"}, ["backend='gpu'", "allowed values: simulated, local, ray"]),
    ({"workers": "12"}, ["workers must be an integer", "'12'"]),
    ({"workers": 1}, ["workers=1 must be >= 2"]),
    ({"rounds": 2.5}, ["rounds must be an integer"]),
    ({"lr": 0}, ["lr=0.0 must be > 0"]),
    ({"target_loss": "low"}, ["target_loss must be a number or \"auto\""]),
    ({"problem": {"kind": "svm"}}, ["problem.kind='svm'", "logistic_regression"]),
    ({"problem": {"dataset": "mnist"}}, ["problem.dataset='mnist'", "breast_cancer"]),
    ({"problem": {"dataset": "iris"}}, ["does not fit", "breast_cancer, synthetic"]),
    ({"problem": {"path": "/nonexistent.svm"}}, ["problem.path", "not an existing file"]),
    ({"problem": {"path": "x", "dataset": "iris"}}, ["mutually exclusive"]),
    ({"problem": "iris"}, ["problem must be a table"]),
    ({"delays": {"model": "gamma"}}, ["delays.model='gamma'", "shifted_exponential"]),
    ({"delays": {"slow_workers": [12]}}, ["slow_workers contains 12", "[0, 11]"]),
    ({"delays": {"slow_workers": [1, 1]}}, ["must not repeat"]),
    ({"delays": {"slow_workers": ["a"]}}, ["list of worker indices"]),
    ({"delays": {"fail_prob": 1.5}}, ["delays.fail_prob=1.5 must be <= 0.999"]),
    ({"schemes": [{"params": {}}]}, ["schemes[0].code is required", "fractional_repetition"]),
    ({"schemes": [{"code": "frc"}]}, ["schemes[0].code='frc'", "fractional_repetition"]),
    ({"schemes": [{"code": "expander", "decoder": "magic"}]},
     ["schemes[0].decoder='magic'", "optimal"]),
    ({"schemes": [{"code": "expander", "wait": "forever"}]},
     ["schemes[0].wait='forever'", "until_decodable"]),
    ({"schemes": [{"code": "expander", "wait": "first"}]}, ["needs schemes[0].r"]),
    ({"schemes": [{"code": "expander", "wait": "all", "r": 3}]},
     ["schemes[0].r only applies to wait='first'"]),
    ({"schemes": [{"code": "uncoded", "name": "a"}, {"code": "expander", "name": "a"}]},
     ["name 'a' is used twice"]),
    ({"schemes": {"code": "uncoded"}}, ["schemes must be an array of tables"]),
    ({"scheme": {"code": "uncoded"}, "schemes": []}, ["either [scheme] or [[schemes]]"]),
])
def test_errors_name_the_key(raw, needles):
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    msg = str(info.value)
    assert msg.startswith("config: ")
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_run_needs_exactly_one_scheme():
    with pytest.raises(ConfigError, match="exactly one scheme"):
        parse_config({}, single=True)
    cfg = parse_config({"scheme": {"code": "expander"}}, single=True)
    assert cfg.schemes[0].code == "expander"


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_overrides_apply_then_validate(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('workers = 6\nbackend = "simulated"\n[delays]\nslow_workers = [5]\n')
    cfg = load_config(f, overrides={"rounds": 7, "seed": None, "out": str(tmp_path / "o")})
    assert (cfg.workers, cfg.rounds, cfg.seed, cfg.backend) == (6, 7, 0, "simulated")
    with pytest.raises(ConfigError, match=r"slow_workers contains 5; .*\[0, 4\]"):
        load_config(f, overrides={"workers": 5})
    with pytest.raises(ConfigError, match="backend='cuda'"):
        load_config(f, overrides={"backend": "cuda"})


def test_default_slow_workers_follow_workers():
    assert parse_config({"workers": 4}).delays.slow_workers == (3,)
    assert parse_config({"workers": 3}).delays.slow_workers == ()


def test_default_dataset_follows_kind():
    assert parse_config({"problem": {"kind": "least_squares"}}).problem.dataset == "diabetes"
    assert parse_config({"problem": {"kind": "softmax_regression"}}).problem.dataset == "iris"


def test_to_dict_roundtrip_is_json():
    import json

    cfg = load_config(EXAMPLES / "compare.toml")
    d = cfg.to_dict()
    json.dumps(d)
    assert d["target_loss"] == "auto" and d["delays"]["slow_workers"] == [3, 8]


def test_parse_params():
    assert parse_params("n=12, s=2,p=0.5,flag=true,name=abc,x=none") == {
        "n": 12, "s": 2, "p": 0.5, "flag": True, "name": "abc", "x": None}
    assert parse_params("") == {}
    with pytest.raises(ValueError, match="must look like name=value"):
        parse_params("n12")
    with pytest.raises(ValueError, match="not a valid parameter name"):
        parse_params("1n=3")


def test_lr_and_optimizer():
    assert parse_config({"lr": "auto"}).lr == "auto"
    assert parse_config({"optimizer": "nesterov"}).optimizer == "nesterov"
    with pytest.raises(ConfigError, match="optimizer='lbfgs'.*gd, nesterov, momentum, adam"):
        parse_config({"optimizer": "lbfgs"})
    with pytest.raises(ConfigError, match="lr must be a number"):
        parse_config({"lr": "fast"})


def test_auto_scheme_and_round_timeout_keys():
    """code = "auto" builds the autopilot (its params are its options; decoder/wait are
    refused), and round_timeout reaches train as a number or "none"."""
    from gradcode.app import compare as cmp
    from gradcode.engine.autopilot import AutoScheme

    cfg = parse_config({"workers": 6, "backend": "simulated", "round_timeout": 7.5,
                        "schemes": [{"code": "auto", "params": {"window": 20}}]})
    assert cfg.round_timeout == 7.5
    assert cmp._train_kwargs(cfg)["round_timeout"] == 7.5
    scheme = cmp.build_scheme(cfg.schemes[0], cfg)
    assert isinstance(scheme, AutoScheme) and scheme.code.n == 6
    assert parse_config({"round_timeout": "none"}).round_timeout == "none"
    assert cmp._train_kwargs(parse_config({"round_timeout": "none"}))["round_timeout"] is None
    assert "round_timeout" not in cmp._train_kwargs(parse_config({}))
    with pytest.raises(ConfigError, match="round_timeout"):
        parse_config({"round_timeout": -1})
    bad = parse_config({"workers": 6, "schemes": [{"code": "auto", "decoder": "optimal"}]})
    with pytest.raises(ValueError, match="chooses its own decoder"):
        cmp.build_scheme(bad.schemes[0], bad, "schemes[0]")
    odd = parse_config({"workers": 6, "schemes": [{"code": "auto", "params": {"s": 2}}]})
    with pytest.raises(ValueError, match="params.s is not an option of auto"):
        cmp.build_scheme(odd.schemes[0], odd, "schemes[0]")


def test_auto_scheme_keeps_its_line_up_name():
    from gradcode.app import compare as cmp
    from gradcode.engine.autopilot import AutoScheme

    cfg = parse_config({"workers": 6, "backend": "simulated", "rounds": 12,
                        "schemes": [{"code": "auto", "name": "my auto"},
                                    {"code": "uncoded"}]})
    scheme = cmp.build_scheme(cfg.schemes[0], cfg)
    assert isinstance(scheme, AutoScheme) and scheme.name == "my auto"
    assert scheme.pilot is not None
