"""`sweeplab report` on a real (tiny) sweep: tables in every format, figures as valid images, index.md."""

import pandas as pd
from PIL import Image

FIGURES = [
    "learning_curves",
    "metric_vs_hyperparameters",
    "optimization_history",
    "parallel_coordinates",
    "importance",
    "per_class_accuracy",
]


def test_a_tiny_sweep_becomes_a_report(tmp_path, sweeplab):
    sweep = sweeplab(
        "train",
        "-m",
        "model.activation=choice(relu,tanh)",
        "model.norm=choice(none,batch)",
        "trainer.seed=choice(0,1)",
        "hydra.sweeper.sampler.name=grid",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.study_name=tiny",
        "trainer.max_steps=60",
        "trainer.eval_every=20",
    )
    assert sweep.returncode == 0, sweep.stdout
    done = sweeplab("report", "tiny", "--out", "rep")
    assert done.returncode == 0, done.stdout
    out = tmp_path / "rep"
    assert {f"table.{fmt}" for fmt in ("md", "tex", "csv", "html")} <= {p.name for p in out.iterdir()}
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns[:2]) == ["model.activation", "model.norm"] and table["n"].tolist() == [2] * 4
    for name in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (out / f"{name}{suffix}").stat().st_size > 1000
        with Image.open(out / f"{name}.png") as image:
            image.verify()
    index = (out / "index.md").read_text()
    assert "Made with `sweeplab report tiny --out rep`" in index and "- trials: 8 (8 COMPLETE)" in index
    assert "reproduce it: `sweeplab train --config-path" in index and "| Act. | Norm. | Val. acc." in index
    assert all(f"({name}.png)" in index for name in FIGURES)


def test_report_reads_the_study_and_spec_of_a_sweep_file(tmp_path, sweeplab):
    sweep = sweeplab(
        "train", "sweep=mnist1d_mlp_ablation", "hydra.sweeper.n_trials=2", "trainer.max_steps=20"
    )
    assert sweep.returncode == 0, sweep.stdout
    done = sweeplab("report", "sweep=mnist1d_mlp_ablation", "--format", "csv")
    assert done.returncode == 0, done.stdout
    out = tmp_path / "outputs" / "reports" / "mnist1d_mlp_ablation"
    header = (out / "table.csv").read_text().splitlines()[0]
    assert header.startswith(
        "model.hidden,model.activation,model.norm,val_acc,val_acc_std,val_acc_ci_low,val_acc_ci_high,test_acc"
    )
    assert "| Hidden layers | Act. | Norm. |" in (out / "index.md").read_text()  # the file's own headers


def test_report_names_a_missing_study(tmp_path, sweeplab):
    done = sweeplab("report", "nothing")
    assert (
        done.returncode == 2
        and "no study 'nothing': sqlite:///" in done.stdout
        and "does not exist" in done.stdout
    )
    assert not (tmp_path / "studies").exists()  # nothing was created


def test_report_refuses_an_unknown_format(tmp_path, sweeplab):
    done = sweeplab("report", "x", "--format", "md,docx")
    assert done.returncode == 2 and "--format: unknown docx; choose from md, tex, csv, html" in done.stdout
