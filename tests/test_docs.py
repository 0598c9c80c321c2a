"""Every `sweeplab` command shown in a shell block of README.md and docs/ runs, so none can rot: a single
run as `--cfg job` (composed, not trained), a sweep as `--dry-run` (planned and checked whole, nothing
stored), a report, studies or export command against a study the test makes (README's) or against an
empty folder (then only "no such study" may stop it), a synopsis (`report STUDY [--out DIR]`) by its
options in `--help`, and a shown session (`$ command` and its output) as it is, its error shown."""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"\[--|\b(STUDY|NAME|URL|DIR|FILE|PATH)\b")
SHARED = ROOT.parent / "shared"  # the pages' `../shared/...` paths, from the project's root
NOT_THERE = ("does not exist", "no studies in")  # a command that got as far as looking its study up


@dataclass(frozen=True)
class Shown:
    page: str
    line: str  # the command as written, continuation lines joined
    output: str  # what the page shows it printing (a `$` session), else ""

    @property
    def id(self) -> str:
        return f"{self.page}: {self.line[:70]}"


def shown_commands() -> list[Shown]:
    found: list[Shown] = []
    for page in PAGES:
        for lang, block in re.findall(r"```(\w*)\n(.*?)```", page.read_text(), re.S):
            if lang not in ("bash", "sh", ""):
                continue
            lines = block.replace("\\\n", " ").splitlines()
            for i, raw in enumerate(lines):
                session = raw.startswith("$ ")
                line = re.sub(r"\s+#.*$", "", raw.removeprefix("$ ")).strip()
                if not re.match(r"([A-Z_]+=\S+ )*sweeplab ", line):
                    continue
                for command in line.split(" && "):
                    words = shlex.split(command) if command else []
                    env = [w for w in words[: next((k for k, w in enumerate(words) if "=" not in w), 0)]]
                    if words[len(env) : len(env) + 1] != ["sweeplab"]:
                        continue
                    output = "\n".join(lines[i + 1 :]) if session else ""
                    found.append(Shown(page.name, command, output.split("\n$ ")[0]))
    return found


COMMANDS = shown_commands()


def test_the_pages_show_commands_of_every_kind() -> None:
    """The parser sees what it should: a change to the pages' format must not make this test empty."""
    kinds = {shlex.split(c.line)[1] for c in COMMANDS if c.line.startswith("sweeplab ")}
    assert {"train", "report", "studies", "export"} <= kinds
    assert len(COMMANDS) >= 30 and any(c.output for c in COMMANDS)


@pytest.mark.parametrize("shown", COMMANDS, ids=lambda c: c.id)
def test_a_documented_command_runs(shown: Shown, sweeplab, monkeypatch) -> None:
    words = shlex.split(shown.line)
    while "=" in words[0]:  # VAR=value sweeplab ...
        key, _, value = words.pop(0).partition("=")
        monkeypatch.setenv(key, value)
    args = [a.replace("../shared/", f"{SHARED}/") for a in words[1:]]
    if any("http://" in a for a in args):
        pytest.skip("needs a running tracking server (tests/track/test_mlflow.py starts one)")
    if any(str(SHARED) in a for a in args) and not SHARED.is_dir():
        pytest.skip(f"needs {SHARED} (absent in a user's clone)")
    if PLACEHOLDER.search(shown.line):  # a synopsis: its options are the command's
        done = sweeplab(*[a for a in args if not a.isupper() and not a.startswith("[")][:2], "--help")
        assert done.returncode == 0, done.stdout
        for option in re.findall(r"--[a-z][\w-]*", shown.line):
            assert option in done.stdout, f"{option} is not an option of `sweeplab {args[0]}`"
        return
    if shown.output:  # a shown session: it fails as shown
        done = sweeplab(*args)
        shown_error = re.sub(r"^\[[^\]]*\](\[[^\]]*\])*( - )?\s*", "", shown.output.strip().splitlines()[0])
        assert done.returncode != 0 and shown_error[:60] in done.stdout, (shown_error, done.stdout)
        return
    if args[0] == "train":
        sweep = "-m" in args or any(a.startswith("sweep=") for a in args)
        extra = (
            [] if {"--help", "--cfg", "--dry-run"} & set(args) else ["--dry-run" if sweep else "--cfg", "job"]
        )
        done = sweeplab(*args, *extra[:1] if sweep else extra)
        assert done.returncode == 0, done.stdout
        return
    done = sweeplab(*args)  # report, studies, export: in a folder without studies
    assert done.returncode == 0 or any(n in done.stdout for n in NOT_THERE), done.stdout


def test_the_readmes_report_and_studies_commands_run_on_a_real_study(sweeplab, tmp_path: Path) -> None:
    made = sweeplab("train", "sweep=mnist1d_mlp", "hydra.sweeper.n_trials=2", "trainer.max_steps=20")
    assert made.returncode == 0, made.stdout
    readme = [c for c in COMMANDS if c.page == "README.md" and c.line.split()[1] in ("report", "studies")]
    assert len(readme) >= 2
    for shown in readme:
        done = sweeplab(*shlex.split(shown.line)[1:])
        assert done.returncode == 0, done.stdout
    assert (tmp_path / "reports" / "mnist1d_mlp" / "table.md").is_file()
