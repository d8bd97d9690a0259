"""Search-space YAML (tune_lnl.config): the shipped MLC/MNIST file against the paper's values
(Table I, Sec. V-A.3), and a table of single-key mutations that must each raise ConfigError
naming the file, the dotted key and the offending value."""

import copy
from pathlib import Path

import pytest
import yaml

from tune_lnl.config import ConfigError, load_space

REPO = Path(__file__).resolve().parents[2]
SPACE_FILE = REPO / "search_spaces" / "mlc_mnist.yaml"

# the paper's Table I (MNIST row), typed by hand; noise settings of Sec. V-A.1
TABLE_I_LAMBDA = {"sym-0.2": 1000.0, "sym-0.4": 3000.0, "sym-0.8": 3000.0, "pair-0.2": 2000.0, "pair-0.45": 2500.0}
NOISE = {"sym-0.2": ("symmetric", 0.2), "sym-0.4": ("symmetric", 0.4), "sym-0.8": ("symmetric", 0.8),
         "pair-0.2": ("pairflip", 0.2), "pair-0.45": ("pairflip", 0.45)}


@pytest.fixture(scope="module")
def space():
    return load_space(SPACE_FILE)


def test_shipped_file_has_the_five_paper_settings(space):
    assert set(space.settings) == set(NOISE)
    for name, (ntype, rate) in NOISE.items():
        s = space.settings[name]
        assert (s.noise_type, s.noise_rate) == (ntype, rate)
    assert space.method == "mlc" and space.dataset == "mnist"
    assert space.proxy in ("noisy_val", "clean_intact")


@pytest.mark.parametrize("setting", list(NOISE))
def test_paper_point_is_table_I(space, setting):
    point = space.paper_point(setting)
    assert point["lambda"] == TABLE_I_LAMBDA[setting]
    assert point["forget_rate"] == NOISE[setting][1]  # forget rate = noise rate
    assert point["mu"] == -1.0
    assert point["xi"] == 0.01
    assert point["K"] == 10.0
    # every paper value lies inside the searched range (it is the first, enqueued trial)
    for k, v in point.items():
        d = space.space_for(setting)[k]
        assert d.low <= v <= d.high, k


@pytest.mark.parametrize("setting", list(NOISE))
def test_paper_config_is_sec_V_A3(space, setting, tmp_path):
    cfg = space.paper_config(setting, str(tmp_path))
    assert cfg["stage1"] == (50 if setting == "pair-0.45" else 30)
    assert cfg["stage2"] == 140  # 320 - 180 finetune epochs
    assert cfg["epochs"] == 320
    assert cfg["lr"] == 1e-3 and cfg["lr2"] == 1e-4
    assert cfg["batch_size"] == 128
    assert cfg["alpha"] == 0.4 and cfg["beta"] == 0.1
    assert cfg["num_gradual"] == 10
    assert cfg["model"] == "mlp"
    assert cfg["lambda"] == TABLE_I_LAMBDA[setting]
    assert cfg["forget_rate"] == NOISE[setting][1]
    assert (cfg["mu"], cfg["xi"], cfg["K"]) == (-1.0, 0.01, 10.0)
    assert (cfg["noise_type"], cfg["noise_rate"]) == NOISE[setting]
    assert cfg["method"] == "mlc" and cfg["dataset"] == "mnist"
    assert cfg["data_root"] == str(tmp_path)
    assert cfg["train_subset"] == 0 and cfg["test_subset"] == 0  # not smoke: the full data


def test_smoke_mode_shrinks_but_keeps_three_stages(tmp_path):
    sp = load_space(SPACE_FILE, smoke_mode=True)
    for setting in NOISE:
        cfg = sp.paper_config(setting, str(tmp_path))
        assert 0 < cfg["stage1"] < cfg["stage2"] < cfg["epochs"]
        assert cfg["train_subset"] > 0 and cfg["test_subset"] > 0
        assert cfg["lambda"] == TABLE_I_LAMBDA[setting]


# -- invalid files ----------------------------------------------------------------------------------

def _set(*path_and_value):
    *path, value = path_and_value

    def mutate(raw):
        d = raw
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return mutate


def _del(*path):
    def mutate(raw):
        d = raw
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return mutate


# (id, mutation of the real file's dict, substrings the message must contain: dotted key, value)
BAD = [
    ("unknown-top-level-key", _set("learning_rate", 0.1), ["learning_rate"]),
    ("unknown-key-in-fixed", _set("fixed", "lr3", 0.1), ["fixed.lr3"]),
    ("unknown-key-in-setting", _set("settings", "sym-0.2", "noize", 1), ["settings.sym-0.2.noize"]),
    ("unknown-key-in-space", _set("space", "momentum", {"low": 0.1, "high": 0.9}), ["space.momentum"]),
    ("epochs-string", _set("fixed", "epochs", "ten"), ["fixed.epochs", "'ten'"]),
    ("batch-size-float", _set("fixed", "batch_size", 1.5), ["fixed.batch_size", "1.5"]),
    ("lr-string", _set("fixed", "lr", "fast"), ["fixed.lr", "'fast'"]),
    ("augment-string", _set("fixed", "augment", "yes"), ["fixed.augment", "'yes'"]),
    ("variant-unknown", _set("fixed", "variant", "offical"), ["fixed.variant", "'offical'"]),
    ("empty-range", _set("space", "K", {"low": 5.0, "high": 5.0}), ["space.K", "5.0"]),
    ("inverted-range", _set("space", "K", {"low": 30.0, "high": 2.0}), ["space.K", "30.0"]),
    ("inverted-range-in-setting", _set("settings", "sym-0.4", "space", "lambda",
                                       {"low": 20000.0, "high": 100.0, "log": True}),
     ["settings.sym-0.4.space.lambda", "20000.0"]),
    ("log-range-low-zero", _set("space", "xi", {"low": 0.0, "high": 1.0, "log": True}), ["space.xi", "0.0"]),
    ("log-range-low-negative", _set("space", "xi", {"low": -0.5, "high": 1.0, "log": True}), ["space.xi", "-0.5"]),
    ("range-missing-high", _set("space", "K", {"low": 2.0}), ["space.K"]),
    ("noise-rate-one", _set("settings", "sym-0.8", "noise", "rate", 1.0), ["settings.sym-0.8.noise.rate", "1.0"]),
    ("noise-rate-negative", _set("settings", "sym-0.2", "noise", "rate", -0.1),
     ["settings.sym-0.2.noise.rate", "-0.1"]),
    ("noise-rate-missing", _del("settings", "pair-0.2", "noise", "rate"), ["settings.pair-0.2.noise"]),
    ("forget-rate-range-high", _set("settings", "sym-0.2", "space", "forget_rate", {"low": 0.05, "high": 1.2}),
     ["settings.sym-0.2.space.forget_rate.high", "1.2"]),
    ("forget-rate-choice-too-big", _set("settings", "sym-0.2", "space", "forget_rate", {"choices": [0.2, 1.5]}),
     ["settings.sym-0.2.space.forget_rate", "1.5"]),
    ("unknown-method", _set("method", "mlcc"), ["method", "'mlcc'"]),
    ("unknown-dataset", _set("dataset", "mnist-fashion"), ["dataset", "'mnist-fashion'"]),
    ("unknown-noise-type", _set("settings", "pair-0.2", "noise", "type", "pairwise"),
     ["settings.pair-0.2.noise.type", "'pairwise'"]),
    ("unknown-proxy", _set("proxy", "test_acc"), ["proxy", "'test_acc'"]),
    ("val-fraction-one", _set("val_fraction", 1.0), ["val_fraction", "1.0"]),
    ("fixed-and-searched-global", _set("fixed", "mu", -1.0), ["fixed.mu"]),
    ("fixed-and-searched-in-setting", _set("settings", "pair-0.45", "fixed", "lambda", 2500.0),
     ["settings.pair-0.45.fixed.lambda"]),
    ("paper-value-outside-range", _set("paper", "K", 50.0), ["paper.K", "50.0"]),
    ("stage1-after-stage2", _set("fixed", "stage1", 200), ["stage1", "200"]),
    ("stage1-after-stage2-in-setting", _set("settings", "pair-0.45", "fixed", "stage1", 150),
     ["settings.pair-0.45", "stage1", "150"]),
    ("stage2-after-epochs", _set("fixed", "stage2", 400), ["stage2", "400"]),
    ("smoke-stage1-after-stage2", _set("smoke", "fixed", "stage1", 5), ["smoke", "stage1", "5"]),
    ("search-num-samples-zero", _set("search", "num_samples", 0), ["search.num_samples", "0"]),
    ("search-pruner-unknown", _set("search", "pruner", "asha"), ["search.pruner", "'asha'"]),
    ("search-pruner-not-a-string", _set("search", "pruner", 3), ["search.pruner", "3"]),
    ("search-cap-zero", _set("search", "max_concurrent_per_study", 0), ["search.max_concurrent_per_study", "0"]),
    ("search-cap-word", _set("search", "max_concurrent_per_study", "many"),
     ["search.max_concurrent_per_study", "'many'"]),
    ("search-at-once-not-bool", _set("search", "studies_at_once", "yes"), ["search.studies_at_once", "'yes'"]),
    ("amp-unknown", _set("fixed", "amp", "fp16"), ["fixed.amp", "'fp16'"]),
    ("amp-boolean", _set("fixed", "amp", True), ["fixed.amp", "True"]),
    ("channels-last-string", _set("fixed", "channels_last", "yes"), ["fixed.channels_last", "'yes'"]),
    ("compile-int", _set("fixed", "compile", 1), ["fixed.compile", "1"]),
    ("compile-in-setting-string", _set("settings", "sym-0.2", "fixed", {"compile": "true"}),
     ["settings.sym-0.2.fixed.compile", "'true'"]),
    ("missing-method", _del("method"), ["method"]),
    ("no-settings", _set("settings", {}), ["settings"]),
]


def _write(tmp_path, raw, name="space.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def real_raw():
    return yaml.safe_load(SPACE_FILE.read_text())


def test_unmutated_copy_loads(tmp_path, real_raw):
    # the mutation table is meaningful only if the round-tripped copy itself is valid
    sp = load_space(_write(tmp_path, copy.deepcopy(real_raw)))
    assert set(sp.settings) == set(NOISE)


# Semantic ranges: values of the right type that cannot be meant (sign constraints).
GAPS = [
    ("lr-negative", _set("fixed", "lr", -0.001), ["fixed.lr", "-0.001"]),
    ("batch-size-zero", _set("fixed", "batch_size", 0), ["fixed.batch_size", "0"]),
    ("K-range-negative", _set("space", "K", {"low": -5.0, "high": 30.0}), ["space.K", "-5.0"]),
    ("mu-range-positive", _set("space", "mu", {"low": -2.0, "high": 1.0}), ["space.mu", "1.0"]),
    # issue 7: the clean_val proxy on synthetic noise, and the budget's training subset
    ("clean-val-without-size", _set("proxy", "clean_val"), ["proxy", "clean_val", "clean_val_size"]),
    ("clean-val-size-negative", _set("clean_val_size", -5), ["clean_val_size", "-5"]),
    ("clean-val-size-not-int", _set("clean_val_size", "500"), ["clean_val_size", "'500'"]),
    ("clean-val-size-eats-the-subset", lambda r: r.update(train_subset=400, clean_val_size=400),
     ["clean_val_size", "400", "train_subset"]),
    ("train-subset-negative", _set("train_subset", -1), ["train_subset", "-1"]),
]


@pytest.mark.parametrize("mutation,expected", [(m, e) for _, m, e in BAD + GAPS],
                         ids=[i for i, _, _ in BAD + GAPS])
def test_bad_file_raises_config_error_naming_file_key_value(tmp_path, real_raw, mutation, expected):
    raw = copy.deepcopy(real_raw)
    mutation(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    for sub in expected:
        assert sub in msg, f"{sub!r} not in {msg!r}"


def test_malformed_yaml_raises_config_error(tmp_path):
    text = SPACE_FILE.read_text().replace("fixed:", "fixed: {epochs: 3\n  lr: [", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    assert str(path) in str(exc.value)
    assert "YAML" in str(exc.value) or "yaml" in str(exc.value)


def test_missing_file_raises_config_error(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    assert str(path) in str(exc.value)


def test_non_mapping_top_level_raises_config_error(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- method: mlc\n")
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    assert str(path) in str(exc.value)


def test_speed_switches_and_pruner_default_off_and_settable(tmp_path, real_raw):
    sp = load_space(SPACE_FILE)
    cfg = sp.paper_config("sym-0.2", str(tmp_path))
    assert (cfg["amp"], cfg["channels_last"], cfg["compile"]) == ("none", False, False)
    assert sp.search.pruner == "successive_halving"
    raw = copy.deepcopy(real_raw)
    raw["fixed"].update(amp="bf16", channels_last=True, compile=True)
    raw["search"]["pruner"] = "hyperband"
    sp = load_space(_write(tmp_path, raw))
    cfg = sp.paper_config("sym-0.2", str(tmp_path))
    assert (cfg["amp"], cfg["channels_last"], cfg["compile"]) == ("bf16", True, True)
    assert sp.search.pruner == "hyperband"


def test_clean_val_size_and_train_subset_reach_the_run_config(tmp_path, real_raw):
    raw = copy.deepcopy(real_raw)
    raw.update(proxy="clean_val", clean_val_size=300, train_subset=5000)
    sp = load_space(_write(tmp_path, raw))
    cfg = sp.paper_config("sym-0.2", str(tmp_path))
    assert (cfg["proxy"], cfg["clean_val_size"], cfg["train_subset"]) == ("clean_val", 300, 5000)
    smoke = load_space(_write(tmp_path, raw), smoke_mode=True).paper_config("sym-0.2", str(tmp_path))
    assert smoke["train_subset"] == sp.smoke["train_subset"]  # the smoke budget's own subset wins
