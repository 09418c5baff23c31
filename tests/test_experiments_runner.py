"""The experiment runner: logs, atomic checkpoints, resume with identical results, the report; and every
file of a run refused in one line naming it when damaged (a toy experiment keeps those tests fast)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lnedu import experiments
from lnedu._io import DamagedFile, FolderLocked
from lnedu.checkpoint import DamagedCheckpoint, read_meta
from lnedu.experiments import mnist_mlp
from lnedu.experiments.common import epoch_batch, epoch_batches
from lnedu.experiments.runner import Diverged, _truncate_log, rng_state, run_one, set_rng_state, strip_timing

ROOT = Path(__file__).resolve().parents[1]
CFG = dataclasses.replace(mnist_mlp.PRESETS["tiny"], epochs=0.2)  # 67 steps at batch 4


def _final_state(folder):
    """The checkpoint's arrays; in its metadata, the hash of the log it saw is left out (the log's training clocks
    differ between any two runs; the runner itself checks that hash on every resume)."""
    with np.load(folder / "checkpoint.npz") as z:
        state = {k: z[k] for k in z.files}
    for k, v in state.items():
        if v.dtype.kind == "U" and "log_sha256" in str(v):
            meta = json.loads(str(v))
            meta.get("extra", {}).pop("log_sha256", None)
            state[k] = np.array(json.dumps(meta))
    return state


def _saved_step(folder):
    return read_meta(folder / "checkpoint.npz")["step"]


def test_run_interrupted_before_any_checkpoint_restarts_to_identical_results(tmp_path):
    cfg = CFG  # the task checkpoints once per epoch: 67 steps end before the first one
    whole = run_one(mnist_mlp, cfg, "ln-bs4", 3, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(mnist_mlp, cfg, "ln-bs4", 3, tmp_path / "b", progress=False, stop_after=30)
    folder_b = tmp_path / "b" / "mnist" / "ln-bs4-seed3"
    assert not (folder_b / "checkpoint.npz").exists() and not (folder_b / "result.json").exists()
    resumed = run_one(mnist_mlp, cfg, "ln-bs4", 3, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed().train == whole.untimed().train
    assert resumed.untimed().eval == whole.untimed().eval
    a, b = _final_state(tmp_path / "a" / "mnist" / "ln-bs4-seed3"), _final_state(folder_b)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    steps = [json.loads(ln)["step"] for ln in (folder_b / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "a resumed log must not repeat or reorder steps"


def test_resume_mid_epoch_from_checkpoint(tmp_path, monkeypatch):
    """Interrupt after a checkpoint inside the run, resume, and match the uninterrupted run bit for bit."""
    orig = mnist_mlp.build

    def build_small_ckpt(config, variant, seed):
        task = orig(config, variant, seed)
        task.checkpoint_every = 10
        return task

    monkeypatch.setattr(mnist_mlp, "build", build_small_ckpt)
    whole = run_one(mnist_mlp, CFG, "bn-bs4", 1, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(mnist_mlp, CFG, "bn-bs4", 1, tmp_path / "b", progress=False, stop_after=25)
    assert _saved_step(tmp_path / "b" / "mnist" / "bn-bs4-seed1") == 20
    resumed = run_one(mnist_mlp, CFG, "bn-bs4", 1, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed() == whole.untimed()


def test_tiny_preset_learns(tmp_path):
    cfg = dataclasses.replace(CFG, epochs=1)
    res = run_one(mnist_mlp, cfg, "ln-bs4", 0, tmp_path, progress=False)
    first, last = res.eval[0]["test_error"], res.eval[-1]["test_error"]
    assert last < 0.5 * first, (first, last)
    losses = [r["loss"] for r in res.train]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    a = epoch_batches(50, 8, seed=1, epoch=2)
    b = epoch_batches(50, 8, seed=1, epoch=2)
    c = epoch_batches(50, 8, seed=1, epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert len(a) == 6 and sorted(np.concatenate(a).tolist()) == sorted(set(np.concatenate(a).tolist()))


def test_one_epoch_batch_is_that_batch_of_the_epoch_s_list():
    """What the tasks call each update (``epoch_batch``) is the k-th batch of ``epoch_batches``, for every k of
    epochs and batch sizes that do not divide n; the shared permutation cannot be changed through a batch."""
    for n, bs, seed, epoch in ((50, 8, 1, 2), (1000, 4, 7, 0), (97, 32, 3, 5)):
        whole = epoch_batches(n, bs, seed, epoch)
        assert len(whole) == n // bs
        for k, batch in enumerate(whole):
            assert np.array_equal(epoch_batch(n, bs, seed, epoch, k), batch)
    # a different epoch of the same run, then the first again: the cache keeps each epoch's own order
    assert not np.array_equal(epoch_batch(50, 8, 1, 3, 0), epoch_batch(50, 8, 1, 2, 0))
    assert np.array_equal(epoch_batch(50, 8, 1, 2, 0), epoch_batches(50, 8, 1, 2)[0])
    with pytest.raises(ValueError, match="read-only"):
        epoch_batch(50, 8, 1, 2, 0)[0] = 3
    for k in (-1, 6):
        with pytest.raises(IndexError, match=rf"k: expected a batch number in \[0, 6\), got {k}"):
            epoch_batch(50, 8, 1, 2, k)


def test_run_and_report_write_summary_table_and_plot(tmp_path):
    runs = tmp_path / "runs"
    experiments.run(mnist_mlp, config=CFG, seeds=(0, 1), variants=["bn-bs4", "ln-bs4", "bn-bs128", "ln-bs128"],
                    out=runs, progress=False)
    summary = json.loads((runs / "mnist" / "summary.json").read_text())
    from lnedu.experiments import verdicts as V

    v = mnist_mlp.verdict(experiments.load_results(runs, "mnist"))
    assert summary["verdict"] == V.word_of(v) and summary["held"] == V.held_of(summary["verdict"])
    assert summary["axis"] == v.axis and [p["claim"] for p in summary["parts"]] == [p.claim for p in v.parts]
    assert summary["paper_numbers"] == mnist_mlp.PAPER_NUMBERS
    assert "bs4:" in summary["our_figure"] and "(2 seeds)" in summary["our_figure"]
    from lnedu.experiments.report import write_report

    rows = write_report(runs, tmp_path / "rep")
    assert [r["name"] for r in rows] == ["mnist"]
    assert (tmp_path / "rep" / "mnist.png").stat().st_size > 1000
    md = (tmp_path / "rep" / "claims.md").read_text()
    assert "| Permutation-invariant MNIST | LN §6.6, Figure 6 |" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| Permutation-invariant MNIST"))
    assert f"| {summary['verdict']} | {summary['axis']} |" in row and mnist_mlp.PAPER_NUMBERS in row
    assert "(seeds 0, 1)" in row  # the per-seed values of each part


def test_unknown_preset_and_variant_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="preset: expected one of"):
        experiments.run(mnist_mlp, "huge", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="variants: expected names from"):
        experiments.run(mnist_mlp, "tiny", variants=["ln-bs5"], out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="name: expected one of"):
        experiments.get("imagenet")


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_runs_its_tiny_preset_and_decides(name, tmp_path):
    exp = experiments.get(name)
    assert exp.NAME == name and exp.CLAIM and exp.PAPER and {"tiny", "small", "paper"} <= set(exp.PRESETS)
    results = experiments.run(exp, "tiny", seeds=(0,), out=tmp_path, progress=False)
    assert set(results) == set(exp.VARIANTS)
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    from lnedu.experiments import verdicts as V

    assert summary["verdict"] == V.word_of(exp.verdict(results)) and summary["our_figure"]
    import matplotlib

    matplotlib.use("Agg")
    fig = exp.plot(results)
    assert fig.axes


def test_truncate_log_skips_a_record_cut_off_mid_write(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rec = [json.dumps({"step": i, "split": "train", "loss": 1.0 / i}) for i in (1, 2, 3)]
    log.write_text(rec[0] + "\n" + rec[1] + "\n" + rec[2][:12])
    _truncate_log(log, 2)
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [1, 2]


def test_truncate_log_names_a_junk_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rec = [json.dumps({"step": i, "split": "train", "loss": 1.0 / i}) for i in (1, 2)]
    log.write_text(rec[0] + "\nNOT JSON\n" + rec[1] + "\n")
    with pytest.raises(DamagedFile, match=r"metrics.jsonl: line 2: expected a JSON record"):
        _truncate_log(log, 2)
    log.write_text(rec[0] + "\n" + json.dumps({"step": 2, "loss": 0.5}) + "\n")
    with pytest.raises(DamagedFile, match=r"metrics.jsonl: line 2: expected 'split' to be 'train' or 'eval'"):
        _truncate_log(log, 2)


# ---- a toy experiment: seconds-free tests of what the runner refuses ----------------------------------------


@dataclasses.dataclass
class ToyConfig:
    lr: float = 0.1
    nan_at: int = 0  # the step whose loss is NaN (0: never)


class ToyTask:
    """Fit ``w`` to noisy targets; its schedule is its own (the config has no ``steps``)."""

    steps, eval_every, checkpoint_every = 12, 4, 5

    def __init__(self, config, seed):
        self.rng = np.random.default_rng(seed)
        self.w, self.t, self.config = self.rng.normal(size=3), 0, config

    def step(self):
        self.t += 1
        x = self.rng.normal(size=3)
        self.w = self.w - self.config.lr * 2 * (self.w - x)
        loss = float(((self.w - x) ** 2).sum())
        return {"loss": float("nan") if self.t == self.config.nan_at else loss}

    def evaluate(self):
        return {"norm": float(np.linalg.norm(self.w))}

    def state_dict(self):
        return {"w": self.w.copy(), "t": np.array(self.t), "rng": rng_state(self.rng)}

    def load_state_dict(self, state):
        self.w, self.t = state["w"].copy(), int(state["t"])
        set_rng_state(self.rng, state["rng"])


TOY = SimpleNamespace(NAME="toy", build=lambda config, variant, seed: ToyTask(config, seed))


def _toy(out, **kw):
    return run_one(TOY, kw.pop("config", ToyConfig()), "v", 0, out, progress=False, **kw)


def _interrupted_toy(tmp_path, stop_after=7):
    """An uninterrupted toy run under ``a``; one stopped after ``stop_after`` steps under ``b`` (its checkpoint
    at step 5); returns (whole, folder of b)."""
    whole = _toy(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _toy(tmp_path / "b", stop_after=stop_after)
    return whole, tmp_path / "b" / "toy" / "v-seed0"


def test_schedule_is_read_from_the_task(tmp_path):
    res = _toy(tmp_path)
    assert [r["step"] for r in res.train] == list(range(1, 13))
    assert [r["step"] for r in res.eval] == [0, 4, 8, 12]


def test_runner_against_an_independent_count(tmp_path, monkeypatch):
    """Steps trained, evaluations and checkpoints counted by the task and by the checkpoint writer, not by the
    runner's own log: 23 steps, an evaluation every 5 (and after the last), a checkpoint every 7 (and after the
    last); then a run stopped after 10 steps resumes from its checkpoint at 7 and does only what is left."""
    from lnedu.experiments import runner

    calls = {"step": 0, "evaluate": 0, "saved": []}

    class Counted(ToyTask):
        steps, eval_every, checkpoint_every = 23, 5, 7

        def step(self):
            calls["step"] += 1
            return super().step()

        def evaluate(self):
            calls["evaluate"] += 1
            return super().evaluate()

    real_save = runner.save_state

    def save(path, state, *, step, extra):
        calls["saved"].append(step)
        return real_save(path, state, step=step, extra=extra)
    monkeypatch.setattr(runner, "save_state", save)
    exp = SimpleNamespace(NAME="toy", build=lambda config, variant, seed: Counted(config, seed))
    res = run_one(exp, ToyConfig(), "v", 0, tmp_path / "a", progress=False)
    assert calls == {"step": 23, "evaluate": 6, "saved": [7, 14, 21, 23]}
    assert [r["step"] for r in res.eval] == [0, 5, 10, 15, 20, 23] and len(res.train) == 23
    calls.update(step=0, evaluate=0, saved=[])
    with pytest.raises(KeyboardInterrupt):
        run_one(exp, ToyConfig(), "v", 0, tmp_path / "b", progress=False, stop_after=10)
    assert calls == {"step": 10, "evaluate": 3, "saved": [7]}
    calls.update(step=0, evaluate=0, saved=[])
    resumed = run_one(exp, ToyConfig(), "v", 0, tmp_path / "b", resume=True, progress=False)
    assert calls == {"step": 16, "evaluate": 4, "saved": [14, 21, 23]}
    assert resumed.untimed() == res.untimed()


def test_toy_resume_is_exact(tmp_path):
    whole, folder = _interrupted_toy(tmp_path)
    resumed = _toy(tmp_path / "b", resume=True)
    assert resumed.untimed() == whole.untimed()
    assert not (folder / "lock").exists()


def test_non_finite_loss_stops_the_run_naming_where(tmp_path):
    with pytest.raises(Diverged, match=r"^toy v seed 0: step 7: loss = nan \(training diverged; its last checkpoint "
                                       r"is from step 5"):
        _toy(tmp_path, config=ToyConfig(nan_at=7))
    folder = tmp_path / "toy" / "v-seed0"
    steps = [json.loads(ln)["step"] for ln in (folder / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6 and not (folder / "result.json").exists() and not (folder / "lock").exists()


def _ckpt_nan(p):
    with np.load(p) as z:
        a = {k: z[k] for k in z.files}
    a["state/w"][1] = np.nan
    np.savez(p, **a)


def _ckpt_no_config(p):
    with np.load(p) as z:
        a = {k: z[k] for k in z.files}
    meta = json.loads(str(a["meta"]))
    meta["extra"] = {}
    a["meta"] = np.array(json.dumps(meta))
    np.savez(p, **a)


def _ckpt_negative_step(p):
    with np.load(p) as z:
        a = {k: z[k] for k in z.files}
    a["step"] = np.array(-5)
    np.savez(p, **a)


CKPT_DAMAGE = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:300]),
    "garbage": lambda p: p.write_bytes(b"\x80\x04garbage" * 40),
    "nan": _ckpt_nan,
    "no config": _ckpt_no_config,
    "negative step": _ckpt_negative_step,
}


@pytest.mark.parametrize("damage", list(CKPT_DAMAGE))
def test_damaged_checkpoint_is_refused_then_restarted_on_request(tmp_path, damage):
    whole, folder = _interrupted_toy(tmp_path)
    CKPT_DAMAGE[damage](folder / "checkpoint.npz")
    with pytest.raises(DamagedCheckpoint) as err:
        _toy(tmp_path / "b", resume=True)
    msg = str(err.value)
    assert msg.startswith(str(folder / "checkpoint.npz") + ": ") and "\n" not in msg
    assert "--restart-damaged" in msg and "allow_pickle" not in msg
    resumed = _toy(tmp_path / "b", resume=True, restart_damaged=True)
    assert resumed.untimed() == whole.untimed()


@pytest.mark.parametrize("cut", ["deleted", "before the checkpoint", "emptied", "repeated"])
def test_log_with_a_hole_is_refused_never_patched_silently(tmp_path, cut):
    whole, folder = _interrupted_toy(tmp_path)
    log = folder / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    if cut == "deleted":
        log.unlink()
    elif cut == "before the checkpoint":
        log.write_text("".join(lines[:4]))  # eval 0, train 1..3: the checkpoint is at step 5
    elif cut == "emptied":
        log.write_text("")
    else:
        log.write_text("".join(lines[:4] + lines[1:]))
    with pytest.raises(DamagedFile, match="hole in the history") as err:
        _toy(tmp_path / "b", resume=True)
    assert str(err.value).startswith(str(log) + ": ") and "--restart-damaged" in str(err.value)
    resumed = _toy(tmp_path / "b", resume=True, restart_damaged=True)
    assert resumed.untimed() == whole.untimed()


def test_junk_line_in_the_log_names_file_and_line(tmp_path):
    _, folder = _interrupted_toy(tmp_path)
    log = folder / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2] + ["\x00\x00 junk\n"] + lines[2:]))
    with pytest.raises(DamagedFile, match=r"metrics.jsonl: line 3: expected a JSON record"):
        _toy(tmp_path / "b", resume=True)


@pytest.mark.parametrize("content", ["", '{"config": "x", "train": [', "[]", '{"train": 1}'])
def test_damaged_result_is_refused_then_rebuilt_on_request(tmp_path, content):
    whole = _toy(tmp_path)
    done = tmp_path / "toy" / "v-seed0" / "result.json"
    done.write_text(content)
    with pytest.raises(DamagedFile) as err:
        _toy(tmp_path, resume=True)
    assert str(err.value).startswith(str(done) + ": ") and "--restart-damaged" in str(err.value)
    again = _toy(tmp_path, resume=True, restart_damaged=True)
    assert again.untimed() == whole.untimed()
    assert strip_timing(json.loads(done.read_text())["train"]) == whole.untimed().train
    done.write_text(content)
    with pytest.raises(DamagedFile, match="result.json"):
        experiments.load_results(tmp_path, "toy")


def test_a_run_folder_in_use_is_refused(tmp_path):
    folder = tmp_path / "toy" / "v-seed0"
    folder.mkdir(parents=True)
    (folder / "lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}))
    with pytest.raises(FolderLocked, match=f"pid {os.getppid()}"):
        _toy(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["lock"]  # nothing written


@pytest.mark.parametrize("seeds, message", [((0, 0), "expected distinct seeds"), ((-1,), "expected non-negative"),
                                            ((), "expected at least one"), ((1.5,), "expected non-negative integers")])
def test_bad_seeds_are_refused_before_any_folder(tmp_path, seeds, message):
    with pytest.raises(ValueError, match=f"seeds: {message}"):
        experiments.run(mnist_mlp, "tiny", seeds=seeds, out=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="seeds: expected non-negative"):
        run_one(TOY, ToyConfig(), "v", -1, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_history_edited_before_the_checkpoint_is_refused(tmp_path):
    """A record before the checkpoint's step that still parses but is not what was logged (a digit garbled)."""
    _, folder = _interrupted_toy(tmp_path)
    log = folder / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["loss"] += 1e-9
    log.write_text("".join(lines[:2] + [json.dumps(rec) + "\n"] + lines[3:]))
    with pytest.raises(DamagedFile, match=r"metrics.jsonl: its records up to step 5 are not those checkpoint.npz saw"):
        _toy(tmp_path / "b", resume=True)


@pytest.mark.parametrize("name", ["metrics.jsonl", "checkpoint.npz", "result.json"])
@pytest.mark.parametrize("damage", ["deleted", "edited"])
def test_a_finished_run_checks_its_three_files_agree(tmp_path, name, damage):
    whole = _toy(tmp_path)
    path = tmp_path / "toy" / "v-seed0" / name
    if damage == "deleted":
        path.unlink()
    elif name == "checkpoint.npz":
        _ckpt_negative_step(path)
    else:
        path.write_text(path.read_text().replace('"loss": ', '"loss": 1', 1))
    if damage == "deleted" and name == "result.json":
        assert _toy(tmp_path, resume=True).untimed().train == whole.untimed().train  # rebuilt from log + checkpoint
        return
    with pytest.raises(DamagedFile) as err:
        _toy(tmp_path, resume=True)
    assert str(err.value).startswith(str(path) + ": ") and "--restart-damaged" in str(err.value)
    again = _toy(tmp_path, resume=True, restart_damaged=True)
    assert again.untimed() == whole.untimed()
    assert _toy(tmp_path, resume=True).untimed().train == whole.untimed().train


def test_a_result_stored_on_its_own_is_returned(tmp_path):
    """What a cluster worker's run leaves on the client (sweep.run_grid stores only result.json there)."""
    whole = _toy(tmp_path)
    folder = tmp_path / "toy" / "v-seed0"
    (folder / "checkpoint.npz").unlink()
    (folder / "metrics.jsonl").unlink()
    res = _toy(tmp_path, resume=True)
    assert res.untimed() == whole.untimed()


def test_a_task_without_its_schedule_is_named(tmp_path):
    class NoSchedule(ToyTask):
        checkpoint_every = None

    exp = SimpleNamespace(NAME="toy", build=lambda config, variant, seed: NoSchedule(config, seed))
    with pytest.raises(ValueError, match=r"checkpoint_every: expected toy's task \(NoSchedule\) to set a positive "
                                         r"integer, got None"):
        run_one(exp, ToyConfig(), "v", 0, tmp_path, progress=False)


def test_a_refused_resume_changes_no_file(tmp_path):
    _, folder = _interrupted_toy(tmp_path)
    log = folder / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:4] + lines[5:]))  # step 4's training record (before the checkpoint) is lost
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(DamagedFile):
        _toy(tmp_path / "b", resume=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_run_checkpointed_in_the_old_format_still_resumes(tmp_path):
    """Runs saved before the runner used lnedu.checkpoint (entries __step__ and __config__) resume for one release."""
    whole, folder = _interrupted_toy(tmp_path)
    ckpt = folder / "checkpoint.npz"
    with np.load(ckpt) as z:
        meta = json.loads(str(z["meta"]))
        old = {k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")}
        old.update(__step__=z["step"], __config__=np.array(meta["extra"]["config"]))
    np.savez(ckpt, **old)
    resumed = _toy(tmp_path / "b", resume=True)
    assert resumed.untimed() == whole.untimed()


# ---- what a mutation run of runner.py found untested (issue 19 item 9) -------------------------------------------


def test_load_results_gives_back_what_run_returned(tmp_path):
    exp = SimpleNamespace(NAME="toy", build=lambda config, variant, seed: ToyTask(config, seed))
    runs = {v: [run_one(exp, ToyConfig(), v, s, tmp_path, progress=False) for s in (0, 3)] for v in ("a-b", "c")}
    loaded = experiments.load_results(tmp_path, "toy")
    assert sorted(loaded) == ["a-b", "c"]
    for v, rs in runs.items():
        got = sorted(loaded[v], key=lambda r: r.seed)
        assert [(r.variant, r.seed) for r in got] == [(v, 0), (v, 3)]
        assert [r.train for r in got] == [r.train for r in rs] and [r.eval for r in got] == [r.eval for r in rs]


def test_series_reads_the_split_asked_for(tmp_path):
    res = _toy(tmp_path)
    steps, loss = res.series("loss", "train")
    assert steps.tolist() == list(range(1, 13)) and loss.dtype == float and len(loss) == 12
    steps, norm = res.series("norm")
    assert steps.tolist() == [0, 4, 8, 12] and res.series("loss")[0].size == 0


def test_load_task_refuses_a_checkpoint_of_another_config(tmp_path):
    _toy(tmp_path)
    task = experiments.load_task(TOY, tmp_path, ToyConfig(), "v", 0)
    assert task.t == 12
    with pytest.raises(ValueError, match=r"^config: the checkpoint in .* was made with another config"):
        experiments.load_task(TOY, tmp_path, ToyConfig(lr=0.2), "v", 0)
    with pytest.raises(FileNotFoundError, match="^out: expected a checkpoint at "):
        experiments.load_task(TOY, tmp_path, ToyConfig(), "v", 1)


def test_a_log_without_its_first_evaluation_is_refused(tmp_path):
    _, folder = _interrupted_toy(tmp_path)
    log = folder / "metrics.jsonl"
    records = [json.loads(ln) for ln in log.read_text().splitlines()]
    log.write_text("".join(json.dumps(r) + "\n" for r in records if not (r["split"] == "eval" and r["step"] == 0)))
    with pytest.raises(DamagedFile, match="expected the metrics of steps 0 to 5"):
        _toy(tmp_path / "b", resume=True)
