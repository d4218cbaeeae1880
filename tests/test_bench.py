"""pipekit.bench on real images (mnist_tiny): a profile's stages account for the epoch it timed, measuring
costs little, a loader compared with itself is a tie, the reference torch DataLoader reads the same items
and split, bottleneck() leaves the learner as it found it, and ``pipekit bench-loader`` runs a recipe file
kept outside the repository. No assertion here is about speed: only ratios of a thing with itself, with
tolerances far wider than a shared machine's noise."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import pipekit.datasets as D
from pipekit.bench import STAGE_TOLERANCE, bottleneck, compare, profile, reference_loader
from pipekit.bench.bottleneck import Bottleneck
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.probe import StageTimes, recording, stage
from pipekit.vision import ImageBlock, Normalize, Resize, aug_transforms, imagenet_stats, simple_cnn

pytestmark = [pytest.mark.data, pytest.mark.filterwarnings("ignore:.*in neither the training")]

ROOT = Path(__file__).resolve().parents[1]


def digits() -> DataBlock:
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=[Resize(32)],
                     batch_tfms=aug_transforms(size=28) + [Normalize.from_stats(*imagenet_stats)])


@pytest.fixture(scope="module")
def source() -> Path:
    return D.path("mnist_tiny")


@pytest.fixture(scope="module")
def dls(source):
    return digits().dataloaders(source, bs=64, seed=0, num_workers=0, device="cpu")


N_BATCHES = 10
#: the measuring loop's own fixed cost per epoch, outside every stage (~1 ms idle, 1.7 ms measured beside the other
#: test worker on a 32 ms epoch: 5.3%); an untimed stage of 10 batches would leave several times that out
FIXED_ALLOWANCE = 0.003


def _untimed_excess(ph) -> float:
    """How far the wall time ``ph``'s stages leave untimed passes the tolerance (5%, or the loop's fixed cost)."""
    return abs(ph.main_seconds - ph.wall_s) - max(STAGE_TOLERANCE * ph.wall_s, FIXED_ALLOWANCE)


def _least_untimed_gap(dls, tries: int = 6):
    """A profile of ``dls`` whose stages leave the least of its wall time untimed, of up to ``tries``: another
    process taking the CPU between two timers (a busy machine, the other test worker) only adds to that gap."""
    best = None
    for _ in range(tries):
        # 10 of mnist_tiny's 11 training batches, so the loop's fixed cost per epoch is a small share of it
        p = profile(dls, n_batches=N_BATCHES, warm_epochs=2)
        gap = max(_untimed_excess(ph) for ph in (p.cold, p.warm))
        if best is None or gap < best[0]:
            best = (gap, p)
        if gap <= 0:
            break
    return best[1]


def test_stages_add_up_to_the_epoch_they_timed(dls):
    p = _least_untimed_gap(dls)
    for phase in (p.cold, p.warm):
        main = [s for s in phase.stages if s.where == "main"]
        # the first epoch is measured whole, the warm ones cut at N_BATCHES
        n = len(dls.train) if phase is p.cold else N_BATCHES
        assert phase.batches == n * phase.epochs and phase.items == n * 64 * phase.epochs
        # with no prefetch threads every stage runs in the main thread; the rest is the measuring loop itself
        assert {s.where for s in phase.stages} == {"main"}
        assert _untimed_excess(phase) <= 0, (phase.main_seconds, phase.wall_s)
        assert sum(s.share for s in main) == pytest.approx(phase.main_seconds / phase.wall_s)
        names = {s.name: s for s in main}
        # one gather, one augmentation (fused with the normalisation) per batch; one plan per epoch
        assert names["BatchAugment+Normalize"].calls == phase.batches
        assert names["collate"].calls == phase.batches and names["batch plan"].calls == phase.epochs
        assert names["BatchAugment+Normalize"].kind == "batch transforms" and names["collate"].kind == "collate"
    d = json.loads(p.to_json())
    assert d["warm"]["batches"] == 2 * N_BATCHES and d["stage_tolerance"] == STAGE_TOLERANCE
    assert d["items_per_s"] == pytest.approx(p.plain_items / p.plain_wall_s)
    assert "BatchAugment+Normalize" in repr(p) or "BatchAugment+Normalize" in p.summary()


def test_with_prefetch_threads_the_main_thread_waits_and_the_threads_work(dls):
    runs = [profile(dls.train.new(num_workers=2), n_batches=6, warm_epochs=1, cold=False).warm for _ in range(3)]
    w = runs[0]
    assert w.threads.get("prefetch", 0) >= 1
    main = {s.name for s in w.stages if s.where == "main"}
    beside = {s.name: s for s in w.stages if s.where == "prefetch"}
    assert "wait for prefetch" in main and "BatchAugment+Normalize" not in main
    aug = beside["BatchAugment+Normalize"]
    # the threads work ahead: when the sixth batch is handed over, the loader has queued num_workers + 1 more
    # (its prefetch depth), which finish when the epoch is cut
    assert 6 <= aug.calls <= 6 + (2 + 1) and 0 < aug.share <= 1
    # starting and joining the prefetch threads is a fixed cost outside every stage: on a 6-batch epoch of
    # tiny digits (~30 ms) it can pass 5% by itself, so it gets an absolute allowance of 6 ms too. Between two
    # stages the main thread may also wait for the interpreter lock while a prefetch thread holds it (up to
    # 5 ms a time): that only adds to the gap, so the least gap of three epochs is the one judged (0.5-4 ms
    # measured, 6.3 ms once on a busy machine). An untimed stage (the main thread mostly waits, ~85% of the
    # epoch) would leave far more out in every one of them.
    gap = min(abs(r.main_seconds - r.wall_s) - max(STAGE_TOLERANCE * r.wall_s, 0.006) for r in runs)
    assert gap <= 0, [(r.wall_s, r.main_seconds) for r in runs]


def test_first_epoch_from_a_datablock_decodes_every_file_into_an_empty_cache(source, tmp_path, monkeypatch):
    cache = tmp_path / "warm_cache"
    monkeypatch.setenv("PIPEKIT_CACHE", str(cache))
    p = profile(digits(), source=source, n_batches=3, warm_epochs=1, bs=64, seed=0, num_workers=0, device="cpu")
    n_files = len(get_image_files(source / "train")) + len(get_image_files(source / "valid"))
    decode = [s for s in p.cold.stages if s.name == "decode" and s.where == "build"]
    assert sum(s.calls for s in decode) == n_files  # cold: a temporary empty cache, every file decoded
    assert p.cold.build_s > 0 and any(s.name == "dataloaders()" for s in p.cold.stages)
    assert not cache.exists()  # the user's cache was left alone
    assert not any(s.name == "decode" for s in p.warm.stages)
    png = p.plot(tmp_path / "profile.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_timers_cost_little_against_untimed_epochs(dls):
    # the probe is a shared no-op while nothing records
    assert stage("x") is stage("y")
    times = StageTimes()
    with recording(times):
        with stage("outer"):
            with stage("inner"):
                sum(range(20000))
    # nested stages are charged their own time only: together they are the outer block's time
    assert times.calls("outer") == times.calls("inner") == 1 and times.seconds("inner") > times.seconds("outer")
    # epochs of mnist_tiny's few batches last ~0.03 s, where a busy machine moves one by half: the median of nine
    # alternating pairs, not three, is what keeps one slow epoch from deciding
    p = profile(dls, n_batches=8, warm_epochs=9, cold=False)
    assert p.probe_overhead < 0.02  # calls x the cost of one, a share of the epoch
    # measured: the median over alternating pairs; 40% is far above the cost and below a real slowdown
    assert p.overhead < 0.4, p.to_dict()


def test_a_loader_compared_with_itself_is_a_tie(dls):
    c = compare(dls, dls, n_batches=6, rounds=4, names=("one", "same"))
    assert len(c.ratios) == 4 and c.names == ("one", "same")
    assert 0.5 < c.ratio < 2.0, c.to_dict()
    assert c.ratio == pytest.approx(float(np.median(c.ratios)))
    assert c.to_dict()["verdict"] == c.verdict
    # a winner needs three rounds at least, each beyond 5% on one side
    from pipekit.bench.compare import Comparison

    assert Comparison(("a", "b"), None, [1.3, 1.2, 1.25], [1.0, 1.0, 1.0]).winner == "a"
    assert Comparison(("a", "b"), None, [1.3, 1.04, 1.25], [1.0, 1.0, 1.0]).winner is None
    assert Comparison(("a", "b"), None, [0.7], [1.0]).winner is None
    assert "give rounds >= 3" in Comparison(("a", "b"), None, [0.7], [1.0]).verdict
    with pytest.raises(ValueError, match=r"only apply when building from a DataBlock"):
        compare(dls, dls, rounds=1, bs=32)
    with pytest.raises(ValueError, match=r"names.*two names"):
        compare(dls, dls, rounds=1, names=("mine",))
    with pytest.raises(ValueError, match=r"cannot measure str"):
        profile("hello world")


def test_reference_loader_reads_the_same_items_and_split(dls, source):
    ref = reference_loader(digits(), source, bs=64, num_workers=0, subset="valid", seed=0)
    ys = torch.cat([y for _, y in ref])
    pk_y = torch.cat([y for _, y in dls.valid])
    assert len(ref.dataset) == len(dls.valid.dataset) == len(pk_y)
    assert torch.equal(ys, pk_y)  # unshuffled validation rows in the same order, the same label encoding
    x, _ = next(iter(ref))
    xp, _ = dls.valid.one_batch()
    assert x.shape == xp.shape and x.dtype == xp.dtype == torch.float32
    # the same resize and normalisation: images agree but for the resampling of two libraries
    assert (x - xp).abs().mean() < 0.15
    train = reference_loader((digits(), source), bs=64, num_workers=0, subset="train", seed=0)
    assert len(train.dataset) == len(dls.train.dataset) and train.drop_last


def test_an_epoch_cut_short_leaves_the_reference_workers_idle(source):
    # Persistent worker processes would go on decoding the batches in flight during the other contender's
    # round; the runner collects them, untimed, as pipekit's loaders finish theirs.
    from pipekit.bench.runner import as_runner

    ref = reference_loader(digits(), source, bs=16, num_workers=2, subset="train", seed=0)
    runner = as_runner(ref, device="cpu")
    assert runner.epoch(0, n_batches=2).batches == 2
    assert ref.persistent_workers and ref._iterator._tasks_outstanding == 0
    assert runner.epoch(1, n_batches=3).batches == 3  # the next epoch starts from the workers' reset
    assert ref._iterator._tasks_outstanding == 0


def test_reference_loader_refuses_what_it_cannot_mirror(source):
    from pipekit.data import RegressionBlock

    odd = DataBlock(blocks=(CategoryBlock, RegressionBlock), get_x=lambda p: p.name, get_y=lambda p: 1.0,
                    get_items=get_image_files, splitter=GrandparentSplitter())
    with pytest.raises(ParameterError, match="one image input"):
        reference_loader(odd, source)
    with pytest.raises(ParameterError, match="DataBlock and its source"):
        reference_loader(digits())
    for bad in ({"bs": 0}, {"num_workers": -1}):
        with pytest.raises(ParameterError, match=rf"reference_loader: {next(iter(bad))}="):
            reference_loader(digits(), source, **bad)


def test_data_is_not_measured_as_a_loader_and_sweep_checks_its_batches(dls):
    """A table, an array or a tensor has a length and can be iterated, but is the data, not a loader: measuring
    its column names as batches gave hundreds of thousands of 'items/s'."""
    import pandas as pd
    import polars as pl

    from pipekit.bench import sweep

    for data in (pd.DataFrame({"a": [1, 2]}), pl.DataFrame({"a": [1, 2]}), np.zeros((4, 2)), torch.zeros(4, 2)):
        with pytest.raises(ParameterError, match=rf"cannot measure {type(data).__name__}: give pipekit DataLoaders"):
            profile(data, n_batches=1)
    for n in (0, -1):
        with pytest.raises(ParameterError, match=rf"sweep: n_batches={n} is not accepted"):
            sweep(dls, workers=(0,), n_batches=n)


def test_bottleneck_measures_three_ways_and_restores_the_learner(dls):
    from pipekit.learn import Learner

    model = simple_cnn(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # a learner that just gave per-item losses (an interpretation's get_preds): the loader phase cancels its
    # batches before the forward pass, and the Recorder must not read that last per-item loss as theirs
    learn = Learner(dls, model)
    learn.get_preds(with_loss=True)
    b = bottleneck(learn, n_batches=3, warmup=1)
    assert min(b.loader_items_s, b.model_items_s, b.full_items_s) > 0
    assert b.limiter in ("loader", "model", "balanced") and b.limiter in b.verdict or b.limiter == "balanced"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training  # the mode get_preds left is put back with the weights (it was left in training)
    d = b.to_dict()
    assert d["overlap"] == pytest.approx(b.full_items_s / min(b.loader_items_s, b.model_items_s))
    assert b.rounds == 1 and {k: len(v) for k, v in b.per_round.items()} == {"loader": 1, "model": 1, "full": 1}
    # rounds: medians of the phases run in alternating order
    again = bottleneck((dls, model), n_batches=2, warmup=1, rounds=3)
    assert {k: len(v) for k, v in again.per_round.items()} == {"loader": 3, "model": 3, "full": 3}
    assert again.model_items_s == pytest.approx(sorted(again.per_round["model"])[1])
    # a training step measured faster than its slower part is impossible: the verdict says the figures disagree
    odd = Bottleneck(100.0, 50.0, 200.0, 3, 64, "cpu")
    assert not odd.consistent and "these figures disagree" in odd.verdict and "rounds=3" in odd.verdict
    assert Bottleneck(100.0, 50.0, 48.0, 3, 64, "cpu").consistent


def test_profile_groups_threads_and_says_what_is_wrong(dls, source):
    from pipekit.bench.profile import _epoch_profile
    from pipekit.bench.runner import EpochRun

    run = EpochRun(1.0, 4, 256, {("read", "prefetch"): (1.0, 4), ("decode", "build"): (0.9, 4),
                                 ("gather", "prefetch"): (0.5, 4), ("wait", "main"): (0.2, 4)}, {"prefetch": 2})
    # the main thread, then each kind of thread with its stages together, by seconds
    assert [(s.where, s.name) for s in _epoch_profile("x", [run]).stages] == [
        ("main", "wait"), ("build", "decode"), ("prefetch", "read"), ("prefetch", "gather")]
    # a first epoch with the loaders' build in its time: each kind of thread is a share of the time it existed
    # (the cache builders of the build, the prefetch threads of the epoch after it), the main thread of it all
    build = EpochRun(1.0, 0, 0, {("decode", "build"): (0.9, 4)}, {"build": 1})
    epoch = EpochRun(1.0, 4, 256, {("read", "prefetch"): (1.6, 4), ("wait", "main"): (0.2, 4)}, {"prefetch": 2})
    shares = {s.name: s.share for s in _epoch_profile("first", [build, epoch], build_s=1.0).stages}
    assert shares == pytest.approx({"decode": 0.9, "read": 0.8, "wait": 0.1})
    with pytest.raises(ParameterError, match="subset='valid' picks a loader of DataLoaders or a DataBlock"):
        profile(dls.train, subset="valid")
    assert profile(dls, n_batches=2, warm_epochs=1, cold=False).subset == "train"
    assert profile(dls.valid, n_batches=2, warm_epochs=1, cold=False).subset is None
    with pytest.raises(ParameterError, match="a batch whose first element is a int has no length"):
        profile([1, 2, 3])
    with pytest.raises(ParameterError, match=r"items are fewer than one batch of bs=5000, and drop_last drops that "
                                             "batch; lower bs"):
        profile(dls.train.new(bs=5000), cold=False)


RECIPE = '''
import os
from pathlib import Path
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, Normalize, Resize, aug_transforms, imagenet_stats


def datablock():
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(32)],
                       batch_tfms=aug_transforms(size=28) + [Normalize.from_stats(*imagenet_stats)])
    return dblock, Path(os.environ["PIPEKIT_DATA"]) / "mnist_tiny"
'''


def test_bench_loader_runs_a_recipe_file_outside_the_repository(tmp_path):
    (tmp_path / "my_digits.py").write_text(textwrap.dedent(RECIPE))
    env = {**os.environ, "PIPEKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pipekit.cli", "bench-loader", "my_digits.py", "--batches", "3", "--bs", "32",
           "--workers", "0,1", "--rounds", "1", "--warm-epochs", "1", "--compare", "reference",
           "--json", "figures/out.json"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert ROOT not in tmp_path.parents
    out = json.loads((tmp_path / "figures" / "out.json").read_text())  # its folder made before measuring
    assert out["recipe"] == str(tmp_path / "my_digits.py")
    assert set(out["sweep"]["rates"]) == {"0", "1"} and out["sweep"]["best"] in (0, 1)
    assert out["profile"]["warm"]["batches"] == 3 and out["profile"]["bs"] == 32
    assert out["profile"]["num_workers"] == out["sweep"]["best"]
    assert out["compare"]["names"] == ["pipekit", "reference"] and len(out["compare"]["ratios"]) == 1
    # each side compared at its own best setting
    assert out["compare_num_workers"] == {"pipekit": out["sweep"]["best"], "reference": out["sweep_reference"]["best"]}
    assert "best setting for pipekit: num_workers=" in r.stdout and "pipekit vs reference" in r.stdout
    # mnist_tiny's test/ folder is left out by the split: said once, not once per build of the loaders
    assert r.stderr.count("20 of 1428 items are in neither the training nor the validation set") == 1, r.stderr


def test_bench_loader_names_a_recipe_without_a_loader(tmp_path, monkeypatch):
    from pipekit.cli import main

    (tmp_path / "empty.py").write_text("X = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="empty.py defines neither datablock"):
        main(["bench-loader", "empty.py"])
    # what --compare names is checked before anything is measured
    (tmp_path / "dl.py").write_text("def dataloaders(**kwargs):\n    raise AssertionError('measured first')\n")
    with pytest.raises(SystemExit, match="--compare reference needs a recipe with datablock"):
        main(["bench-loader", "dl.py", "--compare", "reference", "--json", "x.json"])
    with pytest.raises(SystemExit, match="nonsense"):
        main(["bench-loader", "dl.py", "--compare", "nonsense.py"])
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("method", ["crop", "pad", "squish"])
def test_the_reference_makes_images_of_pipekits_size_for_every_resize(method, tmp_path):
    from pipekit.data import CategoryBlock, DataBlock, RandomSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock, Resize

    files = sorted(get_image_files(D.path("dogscats") / "valid"))[::20]
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: files, get_y=parent_label,
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=Resize((40, 60), method=method))
    mine = dblock.dataloaders("/", bs=4, seed=0).one_batch()[0]
    ref = next(iter(reference_loader(dblock, "/", bs=4, num_workers=0)))[0]
    assert tuple(mine.shape[1:]) == tuple(ref.shape[1:]) == (3, 40, 60)


OWN_DEFAULTS = '''
import json
import os
from pathlib import Path
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock


def dataloaders(bs=16, num_workers=0, seed=42):
    Path("called.json").write_text(json.dumps({"bs": bs, "num_workers": num_workers, "seed": seed}))
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    return dblock.dataloaders(Path(os.environ["PIPEKIT_DATA"]) / "mnist_tiny", bs=bs, num_workers=num_workers,
                              seed=seed)
'''


def test_bench_loader_keeps_a_recipes_own_loader_settings(tmp_path, monkeypatch, capsys):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "own.py").write_text(OWN_DEFAULTS)
    args = ["bench-loader", "own.py", "--batches", "2", "--warm-epochs", "1", "--no-cold", "--json", "out.json"]
    assert main(args) == 0
    # called with nothing given: the function's own defaults, measured as they are
    assert json.loads((tmp_path / "called.json").read_text()) == {"bs": 16, "num_workers": 0, "seed": 42}
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["profile"]["bs"] == 16 and out["profile"]["num_workers"] == 0
    # an option given overrides that setting only
    assert main([*args, "--bs", "8"]) == 0
    assert json.loads((tmp_path / "called.json").read_text()) == {"bs": 8, "num_workers": 0, "seed": 42}
    assert json.loads((tmp_path / "out.json").read_text())["profile"]["bs"] == 8


def test_a_verdict_gives_its_rounds_ratios_in_its_headlines_direction():
    from pipekit.bench.compare import Comparison

    b_wins = Comparison(("torch", "pipekit"), None, [1.0, 1.0, 1.0], [4.3, 5.59, 5.6])
    assert b_wins.verdict == "pipekit is 5.59x torch (every round faster, ratios 4.3-5.6)"
    a_wins = Comparison(("mine", "theirs"), None, [143.62, 150.0, 120.5], [1.0, 1.0, 1.0])
    assert a_wins.verdict == "mine is 143.62x theirs (every round faster, ratios 120-150)"
    far = Comparison(("slow", "fast"), None, [1.0, 1.0, 1.0], [120.5, 143.62, 150.0])
    assert far.verdict == "fast is 143.62x slow (every round faster, ratios 120-150)"


def test_bench_loader_refuses_bad_options_before_loading_anything(tmp_path, monkeypatch, capsys):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)  # no recipe file here: the options are refused before it is looked for
    with pytest.raises(SystemExit) as e:
        main(["bench-loader", "own.py", "--warm-epochs", "0"])
    assert e.value.code == 2 and "--warm-epochs: takes a whole number >= 1, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["bench-loader", "own.py", "--workers", "0,,2"])
    assert e.value.code == 2 and "none of them left empty; got '0,,2'" in capsys.readouterr().err
