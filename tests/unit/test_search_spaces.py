"""The shipped search-space files: every one validates (full and --smoke budgets), their first
trials are the papers' values (typed here by hand from the papers and the reference notes), and
multi-method files reject mistakes naming the file, the dotted key and the value."""
import copy
from pathlib import Path

import pytest
import yaml

from tune_lnl.config import ConfigError, load_experiment, load_space

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / "search_spaces").glob("*.yaml"))
METHODS = {"mlc", "ce", "mae", "gce", "imae", "pencil", "coteaching", "coteaching_plus", "jocor", "elr", "sop",
           "volminnet", "cores", "forward_t", "backward_t", "t_revision", "dividemix", "unicon", "elr_plus",
           "sop_plus", "pes_semi", "promix"}
MLC_SETTINGS = {"sym-0.2": ("symmetric", 0.2), "sym-0.4": ("symmetric", 0.4), "sym-0.8": ("symmetric", 0.8),
                "pair-0.2": ("pairflip", 0.2), "pair-0.45": ("pairflip", 0.45)}
#: MLC paper, Table I: the label-update step lambda per setting (MNIST, CIFAR-10)
TABLE_I_MNIST = {"sym-0.2": 1000.0, "sym-0.4": 3000.0, "sym-0.8": 3000.0, "pair-0.2": 2000.0, "pair-0.45": 2500.0}
TABLE_I_CIFAR10 = {"sym-0.2": 3000.0, "sym-0.4": 4000.0, "sym-0.8": 4000.0, "pair-0.2": 1500.0, "pair-0.45": 4000.0}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("smoke", [False, True])
def test_every_shipped_file_validates(path, smoke):
    exp = load_experiment(path, smoke_mode=smoke)
    assert exp.name == path.stem
    for space in exp.methods.values():
        for s in space.settings:
            cfg = space.paper_config(s, "/data")
            assert cfg["method"] == space.method and cfg["epochs"] >= 1
            if smoke:
                assert cfg["train_subset"] > 0 and cfg["epochs"] <= 6


def test_every_method_has_a_file_on_mnist_and_cifar10():
    names = {p.stem for p in FILES}
    for m in METHODS:
        assert f"{m}_mnist" in names and f"{m}_cifar10" in names, m


def test_compare_files_hold_the_papers_rows():
    table_ii = load_experiment(REPO / "search_spaces/compare_mnist.yaml")  # MLC paper Table II (minus MoPro)
    assert list(table_ii.methods) == ["ce", "coteaching", "coteaching_plus", "pencil", "jocor", "mlc"]
    assert {s: (v.noise_type, v.noise_rate) for s, v in table_ii.first.settings.items()} == MLC_SETTINGS
    imae = load_experiment(REPO / "search_spaces/imae_compare_cifar10.yaml")  # IMAE paper Tables 1-2
    assert list(imae.methods) == ["ce", "mae", "imae"]
    assert {(v.noise_type, v.noise_rate) for v in imae.first.settings.values()} == {
        ("none", 0.0), ("uniform", 0.2), ("uniform", 0.5), ("uniform", 0.8)}


#: the methods issue 29 added to the CIFAR-N and FashionMNIST compare files, in their order there
ISSUE_29 = ["sce", "nce_rce", "gls", "bootstrap", "peer", "forward_t", "backward_t", "t_revision", "volminnet", "elr",
            "sop", "cores"]
#: the six semi-supervised methods of issue 30, in the compare files after ISSUE_29 (200 epochs, their own optimisation)
ISSUE_30 = ["dividemix", "unicon", "elr_plus", "sop_plus", "pes_semi", "promix"]
#: their first trials on CIFAR-10N / CIFAR-100N: each paper's CIFAR-10 / CIFAR-100 values (SCE Sec. 4.1, APL's
#: released configs, ELR Sec. 5 / its configs, SOP's configs), typed by hand
CIFAR_N_PAPER = {
    "compare_cifar10n": {"sce": {"alpha": 0.1, "beta": 1.0}, "nce_rce": {"alpha": 1.0, "beta": 1.0},
                         "elr": {"beta": 0.7, "lambda": 3.0}, "sop": {"lr_u": 10.0, "lr_v": 10.0}},
    "compare_cifar100n": {"sce": {"alpha": 6.0, "beta": 0.1}, "nce_rce": {"alpha": 10.0, "beta": 0.1},
                          "elr": {"beta": 0.9, "lambda": 7.0}, "sop": {"lr_u": 1.0, "lr_v": 10.0}},
}


@pytest.mark.parametrize("name", sorted(CIFAR_N_PAPER))
def test_the_cifar_n_files_run_the_new_methods_with_the_benchmarks_recipe(name):
    """The twelve of issue 29 on CIFAR-N: ResNet-34, 100 epochs, SGD (the CIFAR-N paper's recipe; CORES^2 with its
    own), each paper's values as the first trial, and every phase boundary inside the budget (full and smoke)."""
    for smoke in (False, True):
        exp = load_experiment(REPO / f"search_spaces/{name}.yaml", smoke_mode=smoke)
        for m in ISSUE_29:
            space = exp.methods[m]
            for s in space.settings:
                cfg = space.paper_config(s, "/data")
                assert cfg["optimizer"] == "sgd" and cfg["epochs"] == (3 if smoke else 100), (m, s)
                for key in ("warmup", "revision_start", "sieve_start", "milestone1", "lr_drop"):
                    if key in cfg:
                        assert cfg[key] < cfg["epochs"], (m, key, cfg[key])
                for k, v in CIFAR_N_PAPER[name].get(m, {}).items():
                    assert cfg[k] == v, (m, k)


@pytest.mark.parametrize("name,dataset,model,settings", [
    ("compare_cifar100", "cifar100", "resnet34",
     {"sym-0.2": ("symmetric", 0.2, {}), "sym-0.5": ("symmetric", 0.5, {}), "asym-0.4": ("asymmetric", 0.4, {})}),
    ("compare_cifar10n", "cifar10n", "resnet34",
     {s: ("human", 0.0, {"labels": s}) for s in ("aggre", "random1", "worse")}),
    ("compare_cifar100n", "cifar100n", "resnet34", {"noisy": ("human", 0.0, {"labels": "noisy"})}),
    ("compare_fashionmnist", "fashionmnist", "cnn6",
     {"sym-0.2": ("symmetric", 0.2, {}), "sym-0.5": ("symmetric", 0.5, {}), "asym-0.4": ("asymmetric", 0.4, {}),
      "instance-0.4": ("instance", 0.4, {})}),
])
def test_the_2020s_benchmark_files(name, dataset, model, settings):
    """The benchmarks recent papers report: CE, Co-teaching, JoCoR, MLC and IMAE on each (and issues 29 and
    30's methods on all but CIFAR-100), with
    the settings asked for, the literature's backbone, and the noise rate as the forget rate's
    first trial (the CIFAR-N paper's rates for the human label sets)."""
    exp = load_experiment(REPO / f"search_spaces/{name}.yaml")
    five = ["ce", "coteaching", "jocor", "mlc", "imae"]
    listed = five if name == "compare_cifar100" else five + ISSUE_29 + ISSUE_30
    assert exp.dataset == dataset and list(exp.methods) == listed
    first = exp.first
    assert {s: (v.noise_type, v.noise_rate, v.noise_options) for s, v in first.settings.items()} == settings
    cifar_n_rates = {"aggre": 0.09, "random1": 0.17, "worse": 0.4, "noisy": 0.4}
    for m, space in exp.methods.items():
        for s in settings:
            cfg = space.paper_config(s, "/data")
            cifar_n_recipe = m in ISSUE_29 and dataset.endswith("n")  # the CIFAR-N paper's 100 epochs
            assert cfg["model"] == model and cfg["epochs"] == (100 if cifar_n_recipe else 200), (m, s)
            if m in ("coteaching", "jocor", "mlc"):
                want = cifar_n_rates.get(s, settings[s][1] / 2 if s == "asym-0.4" and dataset != "cifar100"
                                         else settings[s][1])
                assert cfg["forget_rate"] == pytest.approx(want), (m, s)
    assert exp.methods["mlc"].paper_config(next(iter(settings)), "/data")["variant"] == "official"


def test_reproduction_files_differ_from_the_papers_only_by_the_stated_budget():
    """docs/reproduction.md's files: reproduce_mnist_table2.yaml is compare_mnist.yaml with 80
    epochs (MLC/PENCIL: the paper's 30-epoch warm-up, 50 for MLC on pair-0.45, label correction
    until 60, 65 for MLC on pair-0.45); imae_compare_mnist.yaml is CE/MAE/IMAE (T = 8) under
    uniform noise 0.2/0.5/0.8. Every paper value (Table I lambda, forget rate = noise rate, mu,
    xi, K, lr) is that of compare_mnist.yaml. reproduce_mnist_table2.yaml records section 1's runs as
    they were made, with MLC's paper variant and PENCIL's Table I lambdas; compare_mnist.yaml ships
    MLC's official variant and PENCIL's lambdas divided by C (section 5)."""
    full, short = (load_experiment(REPO / f"search_spaces/{f}.yaml")
                   for f in ("compare_mnist", "reproduce_mnist_table2"))
    assert list(short.methods) == list(full.methods) and short.settings == full.settings
    budget = {"epochs", "stage2"}
    for m, space in short.methods.items():
        for s in short.settings:
            a, b = full.methods[m].paper_config(s, "/"), space.paper_config(s, "/")
            assert b["epochs"] == 80
            shipped = {"mlc": {"variant"}, "pencil": {"lambda"}}.get(m, set())
            assert {k for k in a if a[k] != b[k]} <= budget | shipped, (m, s)
            if m == "mlc":
                assert (a["variant"], b["variant"]) == ("official", "paper")
            if m == "pencil":
                assert a["lambda"] == pytest.approx(TABLE_I_MNIST[s] / 10)
            if m in ("mlc", "pencil"):
                assert b["stage1"] == (50 if (m, s) == ("mlc", "pair-0.45") else 30)
                assert b["stage2"] == (65 if (m, s) == ("mlc", "pair-0.45") else 60)
                assert b["lambda"] == TABLE_I_MNIST[s]
    imae = load_experiment(REPO / "search_spaces/imae_compare_mnist.yaml")
    assert list(imae.methods) == ["ce", "mae", "imae"]
    assert {(v.noise_type, v.noise_rate) for v in imae.first.settings.values()} == {
        ("uniform", 0.2), ("uniform", 0.5), ("uniform", 0.8)}
    for s in imae.settings:
        cfg = imae.methods["imae"].paper_config(s, "/")
        assert (cfg["T"], cfg["epochs"], cfg["model"], cfg["lr"]) == (8.0, 80, "mlp", 1e-3)


def test_imae_wide_T_file_is_the_imae_search_with_only_T_widened():
    """Issue 16 part 4's follow-up: imae_T_wide_mnist.yaml is imae_compare_mnist.yaml's IMAE study
    (settings, noise, budget, paper point T = 8 / lr 1e-3, lr range, trials, seeds) with T's upper
    bound 64 instead of 16, so that its finals compare with that file's; the shipped imae_mnist.yaml
    searches that wider range."""
    ref = load_experiment(REPO / "search_spaces/imae_compare_mnist.yaml")
    wide = load_experiment(REPO / "search_spaces/imae_T_wide_mnist.yaml")
    a, b = ref.methods["imae"], wide.methods["imae"]
    assert list(wide.methods) == ["imae"] and wide.settings == ref.settings
    assert (b.num_samples, b.final_seeds) == (a.num_samples, 3)
    for s in ref.settings:
        assert b.paper_config(s, "/") == a.paper_config(s, "/")
        ra, rb = a.space_for(s), b.space_for(s)
        assert rb["lr"] == ra["lr"] and (ra["T"].high, rb["T"].high) == (16.0, 64.0)
        assert (rb["T"].low, rb["T"].log) == (ra["T"].low, ra["T"].log) == (0.25, True)
    # the shipped MNIST file searches the widened range (section 6.1's evidence), with the paper's T first
    shipped = load_experiment(REPO / "search_spaces/imae_mnist.yaml").methods["imae"]
    for s in shipped.settings:
        assert shipped.space_for(s)["T"] == b.space_for("uniform-0.2")["T"] and shipped.paper_config(s, "/")["T"] == 8.0


def test_mlc_search_files_are_the_reproduction_budget_with_two_proxies():
    """Issue 16 part 5's pair of files: MLC on sym-0.8 and pair-0.45 exactly as in
    reproduce_mnist_table2_official.yaml (the shipped default variant; paper values, search ranges,
    stages, 80 epochs), 20 trials, 3 final seeds, 500 clean-labelled images held out in BOTH (same
    training images), and they differ only in the selecting proxy."""
    ref = load_experiment(REPO / "search_spaces/reproduce_mnist_table2_official.yaml").methods["mlc"]
    files = {p: load_experiment(REPO / f"search_spaces/{f}.yaml").methods["mlc"]
             for p, f in (("noisy_val", "mlc_search_mnist"), ("clean_val", "mlc_search_mnist_clean_val"))}
    for proxy, space in files.items():
        assert list(space.settings) == ["sym-0.8", "pair-0.45"]
        assert space.num_samples == 20 and space.final_seeds == 3
        for s in space.settings:
            a, b = ref.paper_config(s, "/"), space.paper_config(s, "/")
            assert b["proxy"] == proxy and b["clean_val_size"] == 500 and b["variant"] == "official"
            assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} <= {"proxy", "clean_val_size"}, s
            assert space.space_for(s) == ref.space_for(s)
    a, b = (files[p].paper_config("sym-0.8", "/") for p in ("noisy_val", "clean_val"))
    assert {k for k in a if a[k] != b[k]} == {"proxy"}


def test_full_budget_mlc_files_are_table_I_at_320_epochs_in_both_variants():
    """Issue 16 part 1's pair: the MLC paper's Sec. V-A.3 schedule (320 epochs, label correction
    from 30 (pair-0.45: 50) to 140, Adam 1e-3 then 1e-4), Table I lambda, forget rate = noise rate,
    mu -1, xi 0.01, K 10, 3 seeds; the two files differ only in the variant."""
    paper, official = (load_space(REPO / f"search_spaces/reproduce_mnist_mlc_320{x}.yaml")
                       for x in ("", "_official"))
    for space, variant in ((paper, "paper"), (official, "official")):
        assert space.final_seeds == 3
        assert {s: (v.noise_type, v.noise_rate) for s, v in space.settings.items()} == MLC_SETTINGS
        for s, lam in TABLE_I_MNIST.items():
            cfg = space.paper_config(s, "/")
            assert cfg["variant"] == variant and cfg["lambda"] == lam
            assert cfg["forget_rate"] == MLC_SETTINGS[s][1]
            assert (cfg["epochs"], cfg["stage1"], cfg["stage2"]) == (320, 50 if s == "pair-0.45" else 30, 140)
            assert (cfg["lr"], cfg["lr2"], cfg["mu"], cfg["xi"], cfg["K"]) == (1e-3, 1e-4, -1.0, 0.01, 10.0)
    for s in TABLE_I_MNIST:
        a, b = paper.paper_config(s, "/"), official.paper_config(s, "/")
        assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} == {"variant"}, s


def test_full_budget_pencil_files_differ_by_the_class_count_in_lambda():
    """Issue 16 part 3's pair: PENCIL at 320 epochs (stages 30 / 140), 3 seeds; one takes Table I's
    lambda as the step of the paper's equations, its twin the published code's step expressed in
    those units (lambda / C, C = 10 on MNIST); nothing else differs."""
    ours, code = (load_space(REPO / f"search_spaces/reproduce_mnist_pencil_320{x}.yaml") for x in ("", "_code_units"))
    for s, lam in TABLE_I_MNIST.items():
        a, b = ours.paper_config(s, "/"), code.paper_config(s, "/")
        assert (a["lambda"], b["lambda"]) == (lam, lam / 10)
        assert (a["epochs"], a["stage1"], a["stage2"], a["alpha"], a["beta"], a["K"]) == (320, 30, 140, 0.4, 0.1, 10.0)
        assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} == {"lambda"}, s
    assert ours.final_seeds == code.final_seeds == 3


@pytest.mark.parametrize("path,method", [("mlc_mnist.yaml", None), ("mlc_cifar10.yaml", None),
                                         ("mlc_clothing1m.yaml", None), ("compare_mnist.yaml", "mlc"),
                                         ("compare_cifar10.yaml", "mlc")])
def test_shipped_mlc_files_run_the_official_variant_at_table_I_lambdas(path, method):
    """Issue 16 part 2's decision (docs/reproduction.md section 5): Table I's lambdas were tuned
    with the published code, so the shipped MLC files run its math (`variant: official`)."""
    space = load_space(REPO / "search_spaces" / path, method=method)
    for s in space.settings:
        assert space.paper_config(s, "/")["variant"] == "official", s


@pytest.mark.parametrize("path,method,table_i", [
    ("pencil_mnist.yaml", None, TABLE_I_MNIST),
    ("compare_mnist.yaml", "pencil", TABLE_I_MNIST),
    ("pencil_cifar10.yaml", None, TABLE_I_CIFAR10),
    ("compare_cifar10.yaml", "pencil", TABLE_I_CIFAR10),
])
def test_shipped_pencil_files_take_table_I_lambda_in_the_codes_units(path, method, table_i):
    """Issue 16 part 2's decision for PENCIL (docs/reproduction.md sections 4-5): our PENCIL sums
    over classes (the paper's equations), the published code averages, so Table I's lambda / C
    (C = 10) gives the published step; the searched range stays around it and the stability bound
    2 / ((1 + alpha) / 2) * B = 366 for B = 128."""
    space = load_space(REPO / "search_spaces" / path, method=method)
    for s, lam in table_i.items():
        assert space.paper_config(s, "/")["lambda"] == pytest.approx(lam / 10), s
        rng = space.space_for(s)["lambda"]
        assert rng.low <= lam / 10 <= rng.high and rng.low < 366 < rng.high, s


@pytest.mark.parametrize("path", ["imae_cifar10.yaml", "imae_compare_cifar10.yaml"])
def test_imae_cifar10_is_the_imae_papers_setup(path):
    """IMAE Sec. 5.1: ResNet, SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10
    at 32k and 48k of 64k iterations; T = 8 on noisy data, 0.5 on clean."""
    space = load_space(REPO / "search_spaces" / path, method="imae")
    for s in space.settings:
        cfg = space.paper_config(s, "/")
        assert cfg["model"] in ("resnet20", "resnet32", "resnet56")
        assert (cfg["optimizer"], cfg["momentum"], cfg["weight_decay"], cfg["batch_size"]) == ("sgd", 0.9, 1e-4, 128)
        assert cfg["lr"] == 0.1 and cfg["lr_schedule"] == "step"
        iters_per_epoch = -(-50000 // 128)
        assert abs(cfg["epochs"] * iters_per_epoch - 64000) < iters_per_epoch  # 64k iterations
        assert cfg["T"] == (0.5 if s == "clean" else 8.0)


def test_mlc_cifar10_is_table_I_and_sec_V_A3():
    space = load_space(REPO / "search_spaces/mlc_cifar10.yaml")
    for s, lam in TABLE_I_CIFAR10.items():
        cfg = space.paper_config(s, "/")
        assert cfg["lambda"] == lam and cfg["model"] == "cnn6"
        assert (cfg["lr"], cfg["lr2"], cfg["stage2"], cfg["epochs"]) == (5e-3, 1e-4, 200, 320)


@pytest.mark.parametrize("method,key,value", [("gce", "q", 0.7), ("imae", "T", 8.0), ("jocor", "co_lambda", 0.9)])
def test_baseline_defaults_are_first_trials(method, key, value):
    space = load_space(REPO / f"search_spaces/{method}_mnist.yaml")
    for s in space.settings:
        assert space.paper_point(s)[key] == value


@pytest.mark.parametrize("method", ["coteaching", "coteaching_plus", "jocor"])
def test_forget_rate_first_trial_is_the_noise_rate(method):
    space = load_space(REPO / f"search_spaces/{method}_mnist.yaml")
    for s, (_, rate) in MLC_SETTINGS.items():
        assert space.paper_point(s)["forget_rate"] == rate


def test_multi_method_top_level_fixed_reaches_every_method():
    exp = load_experiment(REPO / "search_spaces/compare_mnist.yaml")
    for m, space in exp.methods.items():
        cfg = space.paper_config("sym-0.2", "/")
        assert cfg["model"] == "mlp" and cfg["batch_size"] == 128
        assert cfg["epochs"] == (320 if m in ("mlc", "pencil") else 200)  # a method's own fixed wins


def test_load_space_of_a_multi_method_file_needs_a_method():
    with pytest.raises(ConfigError, match="several methods"):
        load_space(REPO / "search_spaces/compare_mnist.yaml")
    with pytest.raises(ConfigError, match="'mae' is not in this file"):
        load_space(REPO / "search_spaces/compare_mnist.yaml", method="mae")


def _mutated(tmp_path, mutate):
    raw = yaml.safe_load((REPO / "search_spaces/compare_mnist.yaml").read_text())
    raw = copy.deepcopy(raw)
    mutate(raw)
    p = tmp_path / "compare.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


BAD_MULTI = [
    ("unknown-method", lambda r: r["methods"].update(mixup={}), ["methods.mixup"]),
    ("method-and-methods", lambda r: r.update(method="mlc"), ["method", "exactly one"]),
    ("shared-fixed-unknown-to-one-method", lambda r: r["fixed"].update(forget_rate=0.2),
     ["fixed.forget_rate", "method ce"]),
    ("setting-not-in-file", lambda r: r["methods"]["jocor"]["settings"].update({"sym-0.5": {}}),
     ["methods.jocor.settings.sym-0.5"]),
    ("bad-range-in-method-setting", lambda r: r["methods"]["jocor"]["settings"]["sym-0.2"]["space"].update(
        forget_rate={"low": 0.05, "high": 1.5}), ["methods.jocor.settings.sym-0.2.space.forget_rate.high", "1.5"]),
    ("space-at-top", lambda r: r.update(space={"lr": {"low": 0.1, "high": 0.2}}), ["space"]),
    ("noise-per-method", lambda r: r["methods"]["ce"].update(settings={"sym-0.2": {"noise": {}}}),
     ["methods.ce.settings.sym-0.2.noise"]),
    ("clean-val-on-mnist", lambda r: r.update(proxy="clean_val"), ["proxy", "clean_val"]),
    ("real-noise-on-mnist", lambda r: r["settings"]["sym-0.2"]["noise"].update(type="real"),
     ["settings.sym-0.2.noise.type", "real"]),
    ("nothing-searched", lambda r: r["methods"]["ce"].update(space={}, paper={}), ["methods.ce.space", "nothing"]),
    ("q-above-one", lambda r: r["methods"].update(gce={"space": {"q": {"low": 0.5, "high": 1.5}}}),
     ["methods.gce.space.q.high", "1.5"]),
    ("unknown-optimizer", lambda r: r["fixed"].update(optimizer="rmsprop"), ["fixed.optimizer", "rmsprop"]),
]


@pytest.mark.parametrize("case,mutate,expected", BAD_MULTI, ids=[c[0] for c in BAD_MULTI])
def test_bad_multi_method_file_names_file_key_value(tmp_path, case, mutate, expected):
    p = _mutated(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_experiment(p)
    msg = str(info.value)
    assert str(p) in msg
    for part in expected:
        assert part in msg, (part, msg)
