"""Headless Chromium for the browser tests, from Debian's `chromium` and `chromium-driver`
(installed by .ci/run), driven by Selenium, with the network off: every host but loopback is
unresolvable, every connection but loopback goes to a proxy that does not exist, and the
DevTools performance log records every URL the page asked for."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")


def binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None where either is missing."""
    browser = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    driver = next((found for name in DRIVER_NAMES if (found := shutil.which(name))), None)
    return (browser, driver) if browser and driver else None


MISSING = ("Chromium is not installed here (Debian: apt-get install chromium chromium-driver, "
           "as .ci/run does)")


@contextlib.contextmanager
def headless_chromium(width: int = 1100, height: int = 900) -> Iterator:
    """A Selenium WebDriver on headless Chromium with the network off (loopback only)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--force-device-scale-factor=1",
                 # the network off: no name resolves, no connection leaves loopback
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>;127.0.0.1",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=driver_path)  # never Selenium Manager's download
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for since the last call (DevTools Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_errors(driver) -> list[str]:
    """The page's console errors (a script that threw, a resource the CSP refused)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def wait_drawn(driver, draws: int = 1, timeout: float = 20) -> None:
    """Waits until the viewer has drawn `draws` times (body[data-draws])."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: int(d.execute_script("return document.body.dataset.draws || 0")) >= draws)


def save_screenshot(driver, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def hover_token(driver, side: str, index: int) -> None:
    """Moves the mouse onto token `index` of the head view's "queries" (left) or "keys"
    (right) column and waits for the redraw."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    before = int(driver.execute_script("return document.body.dataset.draws"))
    item = driver.find_elements(By.CSS_SELECTOR, f"#{side} li")[index]
    ActionChains(driver).move_to_element(item).perform()
    wait_drawn(driver, before + 1)


def screenshot_of_a_token(driver, html: Path, token: str, path: Path,
                          block: int | None = None, head: int | None = None) -> Path:
    """Opens the viewer file `html`, opens `block`/`head` (as a click in the model view does;
    default: as the page opens), hovers the first `token` on the left and saves a screenshot
    of the head view to `path`: what docs/viewer.png shows."""
    from selenium.webdriver.common.by import By

    driver.get(html.as_uri())
    wait_drawn(driver)
    if block is not None and head is not None:
        before = int(driver.execute_script("return document.body.dataset.draws"))
        driver.execute_script("window.attentionViewer.open(arguments[0], arguments[1])",
                              block, head)
        wait_drawn(driver, before + 1)
    driver.execute_script("window.scrollTo(0, 0)")
    tokens = driver.execute_script("return window.attentionViewer.state.doc.tokens")
    hover_token(driver, "queries", tokens.index(token))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.find_element(By.ID, "head-view").screenshot(str(path))
    return path


if __name__ == "__main__":  # python -m tests.browser.chromium VIEWER.html OUT.png [BLOCK HEAD]
    import sys

    arguments = sys.argv[1:]
    with headless_chromium(height=1000) as browser:
        print(screenshot_of_a_token(browser, Path(arguments[0]).resolve(), "it",
                                    Path(arguments[1]),
                                    *(int(value) for value in arguments[2:4])))
