"""fnn serve in a real browser (issue 14): headless Chromium, driven by Selenium, draws a digit with pointer
events, sees the bars, the label and the 28x28 preview update, and uploads a PNG of a fixture digit, which must be
classified as fnn predict classifies it. Skipped, with the reason, where Chromium or its driver is missing."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading

import numpy as np
import pytest

from functional_nn.app.cli import main
from functional_nn.app.serve import load_runs, make_server
from pipelines import read_arrays
from tests.app.interrupt import REPO_ROOT

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra has it)")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the plot extra)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and DRIVER):
        pytest.skip("Chromium or chromedriver not installed (apt-get install chromium chromium-driver): "
                    "the browser test cannot run here")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")           # not a leftover in the temp folder
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=820,760",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = tmp_path_factory.mktemp("browser") / "run"
    assert main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(run), "--hidden", "32",
                 "--epochs", "3", "--batch-size", "8", "--quiet"]) == 0
    server = make_server(load_runs([str(run)]), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield run, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def preview_ink(driver) -> int:
    return driver.execute_script(
        "const d = document.getElementById('preview').getContext('2d').getImageData(0, 0, 224, 224).data;"
        "let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s;")


def test_draw_upload_and_see_what_the_network_sees(browser, served, tmp_path, capsys):
    run, url = served
    browser.get(url)
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#bars li")) == 10)
    assert browser.find_element(By.ID, "label").text == "-" and preview_ink(browser) == 0
    pad = browser.find_element(By.ID, "pad")
    # a "7": a stroke across the top, then down to the left, drawn with the mouse's pointer events
    ActionChains(browser).move_to_element_with_offset(pad, -70, -90).click_and_hold().move_by_offset(50, 0) \
        .move_by_offset(70, 0).move_by_offset(-40, 80).move_by_offset(-40, 90).release().perform()
    wait.until(lambda d: d.find_element(By.ID, "label").text not in ("", "-"))
    widths = "return [...document.querySelectorAll('#bars .fill')].map(e => e.getBoundingClientRect().width);"
    wait.until(lambda d: max(d.execute_script(widths)) > 0)               # the bars grow (a short transition)
    assert len(browser.execute_script(widths)) == 10
    assert preview_ink(browser) > 0                                       # the 28x28 input is drawn
    assert browser.find_element(By.ID, "error").text == ""

    browser.find_element(By.ID, "clear").click()
    assert browser.find_element(By.ID, "label").text == "-"
    row = read_arrays(CSV).x[0].reshape(28, 28)
    png = tmp_path / "seven.png"
    Image.fromarray(255 - row).save(png)                                  # dark ink on white paper, as a photo
    capsys.readouterr()
    assert main(["predict", str(run), str(png), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)["predictions"][0]["label"]
    browser.find_element(By.ID, "upload").send_keys(str(png))
    wait.until(lambda d: d.find_element(By.ID, "label").text not in ("", "-"))
    assert browser.find_element(By.ID, "label").text == expected
    shot = tmp_path / "serve.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("FNN_SERVE_SCREENSHOT"):                            # how docs/serve.png was made
        shutil.copy(shot, os.environ["FNN_SERVE_SCREENSHOT"])
    image = np.asarray(Image.open(io.BytesIO(shot.read_bytes())))
    assert image.shape[0] > 300 and image.std() > 10                      # a page, not a blank screen
