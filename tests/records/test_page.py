"""The shareable HTML page: self-contained, published rows marked, and checked in a real browser."""
import re
import shutil
from pathlib import Path

import pytest

from benchmark.records import leaderboard, results
from benchmark.reproduce.published import published_rows
from tests.helpers.records import write_record
from tests.helpers.tools import tool


def _runs(tmp_path):
    """Smoke records of two checkpoints (3 and 2 trials) on voc0712, each with its config.yaml."""
    values = {"moco_a": (60.0, 61.0, 62.0), "supervised_b": (50.0, 50.5)}
    for name, vs in values.items():
        for trial, v in enumerate(vs):
            folder = tmp_path / "runs" / name / f"trial_{trial}"
            write_record(folder, name=name, task="voc0712", trial=trial, kind="smoke",
                         deviations=["smoke run: synthetic data and a tiny schedule"],
                         metrics={"bbox": {"AP": v, "AP50": v + 20, "AP75": v + 5}})
            (folder / "config.yaml").write_text(f"SEED: {trial}\n")
    return tmp_path / "runs"


def test_published_moco_rows_are_shown_marked_in_all_three_formats(tmp_path, capsys):
    runs = _runs(tmp_path)
    assert tool("leaderboard")([str(runs), "--out", str(tmp_path / "board"), "--published", "moco_voc0712"]) == 0
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "| moco_v2_200ep [published: moco_voc0712] | 57.00 ± 0.20 (n=5, published) | 82.40 ± 0.20 (n=5, published) " \
           "| 63.60 ± 0.40 (n=5, published) |" in md
    assert "| supervised [published: moco_voc0712] | 53.50 ± 0.20 (n=5, published) |" in md
    assert "| moco_a [smoke] | 61.00 ± 1.00 (3) ★ |" in md  # measured, apart, marked among the measured only
    csv_rows = {line.split(",")[0]: line for line in (tmp_path / "board" / "leaderboard.csv").read_text().splitlines()}
    pub = csv_rows["moco_v2_200ep [published: moco_voc0712]"]
    assert ",57.0000,0.2000,5,,," in pub and pub.endswith('"voc0712 bbox/AP: MoCo repository, detection/README.md; '
                                                         'voc0712 bbox/AP50: MoCo repository, detection/README.md; '
                                                         'voc0712 bbox/AP75: MoCo repository, detection/README.md"')
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert '<tr class="published"><td data-value="moco_v2_200ep [published: moco_voc0712]">moco_v2_200ep' in page
    assert '<span class="badge published">published: moco_voc0712</span>' in page
    assert '<span class="badge smoke">smoke</span>' in page
    assert '<td class="n" data-value="57.0" title="MoCo repository, detection/README.md">57.00 ± 0.20 (n=5, published)</td>' in page
    with pytest.raises(AssertionError):  # the pooled mean of smoke and published never appears
        assert "58.50" in md + page


def test_secondary_values_are_shown_as_such_and_unstated_spreads_are_not_invented():
    rows = {r.name: r for r in published_rows(["table3"])}
    ex1 = rows["exemplar_v1"].cells[("voc07", "bbox/AP")]
    assert (ex1.mean, ex1.std, ex1.n, ex1.secondary, ex1.format()) == (47.2, None, None, True, "47.20 (secondary)")
    moco = {r.name: r for r in published_rows(["moco_voc0712"])}["moco_v2_200ep"].cells[("voc0712", "bbox/AP75")]
    assert (moco.std, moco.n) == (0.4, 5)  # MoCo gives both: spread_published


def test_the_page_is_one_self_contained_file(tmp_path):
    runs = _runs(tmp_path)
    records, problems = results.gather([runs])
    board = leaderboard.build(records, problems, published=published_rows(["moco_voc0712"]))
    out = tmp_path / "board"
    leaderboard.write(board, out, ["html"])
    page = (out / "leaderboard.html").read_text()
    external = re.findall(r'(?:src|href)="(?!data:)([^"]+)"', page)
    assert all(not re.match(r"[a-z]+:", link) for link in external), external  # only relative links
    assert "<link" not in page and "<script src" not in page
    for link in external:  # each link to a record or config resolves from the page's folder
        assert (out / link).is_file(), link
    n = 5 * 3  # every cell (3 metrics) links to each of its trials (5 in all) and their configs
    assert sum(link.endswith("results.json") for link in external) == n == sum(link.endswith("config.yaml") for link in external)


def _chromium():
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    # Never skipped: `make test` installs both (tools/setup_env.py --system) or stops before the tests.
    assert browser and driver, ("the page check needs Debian's chromium and chromium-driver: `make test` installs "
                                "them, or run `apt-get install chromium chromium-driver`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow  # starts a browser (a few seconds)
def test_the_page_in_a_real_headless_browser(tmp_path):
    from selenium.webdriver.common.by import By

    runs = _runs(tmp_path)
    write_record(tmp_path / "runs" / "errors" / "trial_0", name="moco_a", task="voc07", kind="smoke",
                 metrics={"bbox": {"AP": 1.0, "AP50": 2.0, "AP75": 0.5}, "errors": {"cls": 1.0, "loc": 2.0}})
    records, problems = results.gather([runs])
    board = leaderboard.build(records, problems, sort_by="voc0712", published=published_rows(["moco_voc0712"]))
    out = tmp_path / "board"
    leaderboard.write(board, out, ["html"])
    driver = _chromium()
    try:
        driver.get(Path(out / "leaderboard.html").resolve().as_uri())
        table = driver.find_element(By.CSS_SELECTOR, "table.sortable")

        def first_column():
            return [tr.find_elements(By.TAG_NAME, "td")[0].get_attribute("data-value")
                    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        def column(i):
            return [tr.find_elements(By.TAG_NAME, "td")[i].get_attribute("data-value")
                    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        header = table.find_elements(By.CSS_SELECTOR, "thead th")
        ap = [h.text.replace("\n", " ") for h in header].index("voc0712 bbox/AP")
        header[ap].click()
        values = [float(v) for v in column(ap) if v]
        assert values == sorted(values, reverse=True) and len(values) == 6  # 2 measured + 4 published
        assert header[ap].get_attribute("aria-sort") == "descending"
        header[ap].click()
        values = [float(v) for v in column(ap) if v]
        assert values == sorted(values) and header[ap].get_attribute("aria-sort") == "ascending"
        header[0].click()
        assert first_column() == sorted(first_column(), reverse=True)
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 2  # voc0712 and voc07
        voc0712 = charts[0]
        assert len(voc0712.find_elements(By.CSS_SELECTOR, "rect.bar.measured")) == 2
        assert len(voc0712.find_elements(By.CSS_SELECTOR, "rect.bar.published")) == 4
        assert len(voc0712.find_elements(By.CSS_SELECTOR, "path.errorbar")) == 6  # every bar here has a std
        assert all(float(r.get_attribute("height")) > 0 for r in voc0712.find_elements(By.CSS_SELECTOR, "rect.bar"))
        assert voc0712.size["width"] > 100 and voc0712.size["height"] > 100  # rendered, not collapsed
        img = driver.find_element(By.CSS_SELECTOR, "img[alt='AP lost per error type']")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == []
    finally:
        driver.quit()


@pytest.mark.slow  # starts a browser (a few seconds)
def test_an_error_column_sorts_lowest_first_and_intervals_show_in_the_browser(tmp_path):
    """Issue 19's metrics in the page: the landmark error (lower is better) sorts lowest first on the first
    click and its lowest mean carries the best mark; the few-shot interval is shown beside the mean."""
    from selenium.webdriver.common.by import By

    for name, errors in {"low": (3.0, 3.2), "high": (6.0, 6.4), "mid": (4.0, 4.2)}.items():
        for trial, v in enumerate(errors):
            write_record(tmp_path / "runs" / name / "mafl" / f"trial_{trial}", name=name, task="mafl_landmarks", trial=trial,
                         metrics={"landmarks": {"iod_error": v}})
            write_record(tmp_path / "runs" / name / "fewshot" / f"trial_{trial}", name=name, task="fewshot_miniimagenet",
                         trial=trial, metrics={"fewshot": {"1shot": 50.0 + v, "1shot_ci95": 0.8, "5shot": 70.0, "5shot_ci95": 0.6}})
    records, problems = results.gather([tmp_path / "runs"])
    board = leaderboard.build(records, problems, sort_by="fewshot_miniimagenet", published=published_rows(["table5"]))
    out = tmp_path / "board"
    leaderboard.write(board, out, ["html"])
    driver = _chromium()
    try:
        driver.get(Path(out / "leaderboard.html").resolve().as_uri())
        table = driver.find_element(By.CSS_SELECTOR, "table.sortable")
        header = table.find_elements(By.CSS_SELECTOR, "thead th")
        err = [h.text.replace("\n", " ") for h in header].index("mafl_landmarks landmarks/iod_error ↓")

        def cells(i):
            return [tr.find_elements(By.TAG_NAME, "td")[i] for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        header[err].click()
        assert header[err].get_attribute("aria-sort") == "ascending"
        values = [float(td.get_attribute("data-value")) for td in cells(err) if td.get_attribute("data-value")]
        assert values == sorted(values) == [2.86, 3.1, 3.42, 4.1, 6.2]  # DVE's two (other work) among ours
        lowest_measured = next(td for td in cells(err) if td.get_attribute("data-value") == "3.1")
        assert lowest_measured.text.startswith("3.10 ± 0.14 (2) ★")
        header[err].click()
        assert header[err].get_attribute("aria-sort") == "descending"
        one = [h.text.replace("\n", " ") for h in header].index("fewshot_miniimagenet fewshot/1shot")
        assert any(td.text.startswith("53.10 ± 0.14 (2) [95% CI ± 0.80]") for td in cells(one))
        badges = driver.find_elements(By.CSS_SELECTOR, ".badge.other-work")
        assert sorted(b.text for b in badges) == ["other work, same metric only: table5"] * 2
        assert [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"] == []
    finally:
        driver.quit()


@pytest.mark.slow  # starts a browser (a few seconds)
def test_hostile_records_run_no_script_and_show_as_text_in_a_real_browser(tmp_path):
    """Issue 22: names, folders, tasks and metrics written to run script, fake a URL or hide text. Opened in
    chromium, the page runs none of it, every link stays a file beside the page, and the text shows as text
    (hidden characters as their escapes)."""
    name = '<img src=x onerror="window.pwned=1">\u202eevil\x1b[31m'
    task = "<script>window.pwned=3</script>"
    metric = "<svg onload=window.pwned=4>"
    runs = tmp_path / "runs"
    for i, folder in enumerate(["javascript:window.pwned=2;%0A%2F", "ok"]):
        record = write_record(runs / folder, name=name if i == 0 else "plain", task=task, trial=0,
                              metrics={"bbox": {metric: 40.0 + i}})
        (record.parent / "config.yaml").write_text("SEED: 0\n")
    out = runs  # the page beside the records, where a javascript: folder became a javascript: href
    assert tool("leaderboard")([str(runs), "--published", "none", "--out", str(out), "--format", "html"]) == 0
    driver = _chromium()
    try:
        from selenium.webdriver.common.by import By

        driver.get(Path(out / "leaderboard.html").resolve().as_uri())
        assert driver.execute_script("return window.pwned === undefined")
        links = driver.find_elements(By.CSS_SELECTOR, "a[href]")
        assert len(links) == 4  # two cells, each: record and config
        assert all(link.get_attribute("href").startswith("file:///") for link in links), [
            link.get_attribute("href") for link in links]
        for i in range(len(links)):
            driver.find_elements(By.CSS_SELECTOR, "a[href]")[i].click()  # a javascript: href would run here
            assert driver.execute_script("return window.pwned === undefined")
            if driver.current_url.endswith(".html"):
                continue
            driver.back()
        assert driver.execute_script("return window.pwned === undefined")
        text = driver.find_element(By.TAG_NAME, "body").text
        shown = '<img src=x onerror="window.pwned=1">\\u202eevil\\x1b[31m'
        assert shown in text and task in text and metric in text
        assert "\u202e" not in text and "\x1b" not in text
        assert [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"] == []
    finally:
        driver.quit()
