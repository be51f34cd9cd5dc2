"""The playground page in a real headless Chromium: loads, classifies, translates, draws the heatmap."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,1400"]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"no browser: needs chromium and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_playground_classifies_translates_and_draws_the_heatmap(server, offline, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clf, tr = offline
    wait = WebDriverWait(browser, 20)
    browser.get(server.url + "/")
    wait.until(lambda d: "clf (classifier)" in d.find_element(By.ID, "models").text)

    text = "stocks rally as oil prices fall"
    box = browser.find_element(By.ID, "classify-input")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "classify-button").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#classify-results .bar"))
    top = browser.find_element(By.CSS_SELECTOR, "#classify-results .bar.top span").text
    assert top == clf.predict([text])[0].label
    assert len(browser.find_elements(By.CSS_SELECTOR, "#classify-results .bar")) == len(clf.labels)
    assert browser.find_element(By.ID, "classify-latency").text.endswith(" ms")

    source = "Ein Mann fährt Fahrrad."
    field = browser.find_element(By.ID, "translate-input")
    field.clear()
    field.send_keys(source)
    browser.find_element(By.ID, "translate-button").click()
    wait.until(lambda d: d.find_element(By.ID, "translation").text)
    want = tr.translate([source], beam_size=4, return_attention=True)[0]
    assert browser.find_element(By.ID, "translation").text == want.text
    canvas = browser.find_element(By.ID, "heatmap")
    assert canvas.is_displayed() and canvas.get_attribute("data-drawn") == str(want.attention.size)
    # the heatmap really has dark cells: sample the canvas pixels
    dark = browser.execute_script(
        "const c = document.getElementById('heatmap'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n;")
    assert dark > 100
    assert not browser.find_element(By.ID, "translate-error").text

    shot = tmp_path / "playground.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("ONNXPRESS_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
