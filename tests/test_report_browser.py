"""The smoke run's report in a real browser: headless Chromium (Debian `chromium` +
`chromium-driver`) driven by Selenium. Skips, saying why, when either is missing.

Asserts every section and image renders, the console stays free of errors, and the comparison
viewer's slider, A/B toggle, |error| view and keyboard navigation change what is displayed.
Saves a full-page screenshot and the measured load time and file size under
``test-artifacts/`` (git-ignored) for CI to keep.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SECTIONS = ["provenance", "timing", "viewer", "data", "features", "decoder", "tokenizer",
            "sparse", "diagnostics"]  # fmt: skip
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1000"]  # fmt: skip


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(
            "headless Chromium not installed (Debian: apt-get install -y chromium "
            "chromium-driver); the browser test needs both `chromium` and `chromedriver`"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    return browser, driver


@pytest.fixture
def browser(tmp_path):
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")  # a fresh profile
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _stage_png(driver) -> bytes:
    return driver.find_element("id", "viewer-stage").screenshot_as_png


def _press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def _wait(driver, script: str, timeout: float = 30) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


@pytest.mark.slow
def test_smoke_report_in_headless_chromium(smoke_project, browser):
    report = smoke_project / "reports" / "index.html"
    size_mb = report.stat().st_size / 1e6
    browser.get(report.as_uri())
    _wait(browser, "return document.readyState === 'complete'")
    _wait(browser, "return document.getElementById('viewer').dataset.ready === '1'")
    load_ms = browser.execute_script(
        "const t = performance.getEntriesByType('navigation')[0];"
        "return t.loadEventEnd - t.startTime;"
    )

    # every section is there and has a visible box
    for anchor in SECTIONS:
        box = browser.find_element("id", anchor)
        assert box.is_displayed() and box.size["height"] > 20, anchor
    # every image decoded (inlined data URIs: nothing fetched)
    broken = browser.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40));"
    )
    assert broken == []
    n_images = browser.execute_script("return document.images.length;")
    assert n_images >= 20
    assert (
        browser.execute_script(
            "return Array.from(document.querySelectorAll('script[src], link[href]')).length;"
        )
        == 0
    )  # no external resource of any kind

    # the viewer: three studies, tiles with PSNR on every reconstruction
    groups = browser.execute_script(
        "return Array.from(document.querySelectorAll('#viewer-group option')).map(o => o.text);"
    )
    assert groups == [
        "Feature inversion: decoder per backbone",
        "Tokenizer variants and JPEG at the nearest bpp",
        "Sparse query: observed / truth / best cell / best baseline",
    ]
    tiles = browser.execute_script(
        "return Array.from(document.querySelectorAll('#viewer-tiles .tile .metric'))"
        ".map(e => e.textContent);"
    )
    assert len(tiles) == 3 and sum("PSNR" in t for t in tiles) == 2  # target + 2 backbones

    # slider: moving it changes the displayed image
    before = _stage_png(browser)
    _press(browser, "]")
    assert browser.find_element("id", "viewer").get_attribute("data-shown") == "split:60"
    browser.execute_script(
        "const s = document.getElementById('viewer-slider'); s.value = 5;"
        "s.dispatchEvent(new Event('input'));"
    )
    assert browser.find_element("id", "viewer").get_attribute("data-shown") == "split:5"
    after_slider = _stage_png(browser)
    assert after_slider != before
    # toggle: A alone, then B alone — two different pictures
    _press(browser, "t")
    assert browser.find_element("id", "viewer").get_attribute("data-shown") == "a"
    shown_a = _stage_png(browser)
    _press(browser, "t")
    assert browser.find_element("id", "viewer").get_attribute("data-shown") == "b"
    shown_b = _stage_png(browser)
    assert shown_a != shown_b
    # |error| view replaces the picture of A with its error map
    src_a = browser.find_element("id", "viewer-a").get_attribute("src")
    _press(browser, "e")
    _wait(browser, f"return document.getElementById('viewer-a').src !== {json.dumps(src_a)};")
    _press(browser, "e")
    # keyboard navigation: next image, next study
    _press(browser, "\ue014")  # ArrowRight
    assert browser.execute_script("return document.getElementById('viewer-image').value;") == "1"
    _press(browser, "\ue015")  # ArrowDown: the tokenizer study
    _wait(browser, "return document.getElementById('viewer-group').value === '1';")
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('#viewer-tiles .tile .label'))"
        ".map(e => e.textContent);"
    )
    assert any("JPEG q" in label for label in labels)

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    ARTIFACTS.mkdir(exist_ok=True)
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    import base64

    (ARTIFACTS / "report_smoke.png").write_bytes(base64.b64decode(shot["data"]))
    measured = {"file_mb": round(size_mb, 2), "load_ms": round(load_ms), "images": n_images}
    (ARTIFACTS / "report_smoke.json").write_text(json.dumps(measured, indent=1) + "\n")
    print(f"report: {measured}")
    assert size_mb < 15


@pytest.mark.slow
def test_dvc_plots_render_offline_with_the_local_template(smoke_copy, browser, tmp_path):
    """`dvc plots show` with the template of `reconlab plots-template`: Vega inlined, no CDN."""
    import sys

    from conftest import run

    if shutil.which("npm") is None:
        pytest.skip("npm not installed: `reconlab plots-template` fetches Vega with npm pack")
    template = tmp_path / "offline.html"
    proc = run([sys.executable, "-m", "reconlab.cli", "plots-template", "--no-config",
                "--out", str(template)], smoke_copy, check=False)  # fmt: skip
    if proc.returncode != 0 and "npm pack" in proc.stderr:
        pytest.skip(f"npm registry not reachable: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "plots"
    run([sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template),
         "-o", str(out)], smoke_copy)  # fmt: skip
    page = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page
    browser.get((out / "index.html").as_uri())
    _wait(browser, "return document.readyState === 'complete'")
    assert browser.execute_script("return typeof vegaEmbed;") == "function"
    _wait(
        browser,
        "return document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length > 0",
    )
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
