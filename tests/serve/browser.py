"""Headless Chromium for the studio's browser tests, from the distribution's packages
(`apt-get install -y chromium chromium-driver`), driven by Selenium through the driver's
path given explicitly: no Selenium Manager, no browser download, no network.

The flags keep Chromium off the network it would otherwise reach for at every start
(component updates, sync, background fetches): the machines that run these tests have none.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-dev-shm-usage")


def chromium(profile: Path, downloads: Path, size: tuple[int, int] = (1280, 900),
             phone: bool = False):
    """A Selenium driver of headless Chromium saving downloads into `downloads`; skips the
    test when Chromium or its driver is not installed. `phone`: a phone's screen of `size`
    CSS pixels at 3 device pixels each, as Chromium's device emulation makes it (a window
    cannot be made that narrow)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"Chromium is not installed ({', '.join(missing)} missing): apt-get "
                    "install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": size[0], "height": size[1], "pixelRatio": 3.0, "touch": True}})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def console_errors(driver) -> list[str]:
    """The console's errors since the last call (Chromium's log is read once)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(condition, timeout: float = 60, what: str = "the page"):
    """Poll `condition()` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def downloaded(directory: Path, name: str, timeout: float = 60) -> Path:
    """The file `name` once Chromium has finished writing it into `directory`."""
    path = directory / name
    wait_for(lambda: path.is_file() and not (directory / f"{name}.crdownload").exists(),
             timeout, f"the download {name}")
    return path


def texts(driver, selector: str) -> list[str]:
    """The text of every element `selector` matches, read at one instant (the page redraws
    its list as previews arrive)."""
    return driver.execute_script(f"return [...document.querySelectorAll('{selector}')]"
                                 ".map((e) => e.textContent)")


def open_with(driver, server, *paths) -> None:
    """Load the page, add the photos, wait until every one is coloured and one is shown."""
    driver.get(f"{server.url}/")
    wait_for(lambda: driver.find_element(By.ID, "model").text.startswith("model "),
             what="the server's health")
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    wait_for(lambda: texts(driver, "#list .status") == ["done"] * len(paths),
             what="the previews")
    wait_for(lambda: driver.execute_script("return document.getElementById('colour').width"))
