"""Each command imports only what it uses: the command line's help and `studies` never load torch, and a
training run never loads the report's libraries (pandas, matplotlib, seaborn)."""

import os
import subprocess
import sys

import optuna

RUN = """
import sys
from sweeplab.console import main
for command in {commands!r}:
    sys.argv = ["sweeplab", *command]
    try:
        main()
    except SystemExit as done:
        assert not done.code, (command, done.code)
    loaded = [m for m in {absent!r} if m in sys.modules]
    assert not loaded, f"sweeplab {{' '.join(command)}} imported {{loaded}}"
"""


def run(commands: list[list[str]], absent: list[str], cwd) -> None:
    code = RUN.format(commands=commands, absent=absent)
    env = dict(os.environ, SWEEPLAB_STUDIES_DIR=str(cwd / "studies"))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_help_and_studies_never_import_torch(tmp_path):
    (tmp_path / "studies").mkdir()
    optuna.create_study(study_name="a", storage=f"sqlite:///{tmp_path}/studies/a.db")
    commands = [
        ["--help"],
        ["studies", "--help"],
        ["report", "--help"],
        ["studies"],
    ]
    run(commands, ["torch"], tmp_path)
    # nor does the report's help load the report's libraries (2 s of them)
    run([["report", "--help"]], ["pandas", "seaborn", "matplotlib", "scipy"], tmp_path)


def test_a_training_run_never_imports_the_report_libraries_optuna_or_the_tracer(tmp_path, data_dir):
    train = ["train", "trainer.max_steps=1", "trainer.progress=false", f"data_dir={data_dir}"]
    run([train], [], tmp_path)  # MNIST-1D generated once (the mnist1d package imports matplotlib)
    # nor Optuna (a single run stores nothing), nor torch's tracer (torch.optim's step imports it)
    run([train], ["pandas", "matplotlib", "seaborn", "optuna", "sqlalchemy", "torch._dynamo"], tmp_path)


def test_checking_a_sweep_never_imports_torch_compile(tmp_path, data_dir):
    """A sweep's plan, and every check before trial 0, build an optimizer but run no step: torch's tracer
    (torch._dynamo, over a second to import) stays unloaded until a step needs it."""
    sweep = ["train", "-m", "optimizer.lr=interval(0.001,0.01)", "--dry-run", f"data_dir={data_dir}"]
    run([sweep], ["torch._dynamo", "torch._inductor"], tmp_path)
