"""index.html: the report as one self-contained page, checked in a real headless browser (Debian's
chromium and chromium-driver, driven by selenium; skipped cleanly without them)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from sweeplab.report.page import to_page


def test_the_page_inlines_its_figures_and_keeps_its_other_links(tmp_path: Path) -> None:
    png = bytes.fromhex("89504e470d0a1a0a") + b"figure"
    (tmp_path / "curves.png").write_bytes(png)
    table = "| a | b |\n| --- | --- |\n| **0.5** | 1 |\n"
    text = f"# Report: s\n\n{table}\n![curves](curves.png) ([PDF](curves.pdf))\n"
    page = to_page(text, tmp_path, "Report: s")
    assert page.startswith("<!DOCTYPE html>") and "<title>Report: s</title>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgpmaWd1cmU="' in page and 'src="curves.png"' not in page
    assert '<a href="curves.pdf">PDF</a>' in page and "<td><strong>0.5</strong></td>" in page


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    yield driver
    driver.quit()


@pytest.mark.slow  # a headless Chromium takes 10-25 s to start here
def test_the_report_page_renders_every_table_and_figure_with_the_csvs_numbers(tmp_path, sweeplab, browser):
    from selenium.webdriver.common.by import By

    sweep = sweeplab(
        "train", "-m", "model.activation=choice(relu,tanh)", "trainer.seed=choice(0,1)",
        "hydra.sweeper.sampler.name=grid", "hydra.sweeper.study_name=page", "trainer.max_steps=40",
        "trainer.eval_every=20",
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stdout
    done = sweeplab("report", "page", "--out", "rep")
    assert done.returncode == 0, done.stdout
    out = tmp_path / "rep"
    browser.get((out / "index.html").as_uri())
    assert browser.title == "Report: page"
    images = browser.find_elements(By.TAG_NAME, "img")
    figures = sorted(p.name for p in out.glob("*.png"))
    assert len(images) == len(figures) >= 4
    for image in images:  # loaded and drawn: a broken image has no natural width
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    table = browser.find_elements(By.TAG_NAME, "table")[0]  # the report's table (then the per-value ones)
    headers = [th.text for th in table.find_elements(By.TAG_NAME, "th")]
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    csv = pd.read_csv(out / "table.csv")
    assert len(rows) == len(csv) == 2
    column = headers.index("Val. acc.")
    for row, (_, expected) in zip(rows, csv.iterrows(), strict=True):
        shown = (
            f"{expected['val_acc']:.3f} [{expected['val_acc_ci_low']:.3f}, {expected['val_acc_ci_high']:.3f}]"
        )
        assert row[column].rstrip(" ≈") == shown, (row, shown)
        assert row[headers.index("n")] == str(expected["n"])
    page_text = browser.find_element(By.TAG_NAME, "body").text
    assert "Student's t" in page_text  # the legend: the test and the level named under the table
