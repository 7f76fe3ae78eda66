"""The studio in a real browser (headless Chromium, `tests/serve/browser.py`) against a real
server with the tiny trained model: the page loads without console errors, colours photos,
places, moves, removes and undoes hints preset to the predicted colour, and downloads the
`jaxcolor colorize` result, the hints file and a zip of everything."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile

import httpx2
import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from jaxcolor import cli
from jaxcolor.inference import hints as hints_lib
from jaxcolor.serve.app import create_app
from tests.serve.browser import (chromium, console_errors, downloaded, open_with, texts,
                                 wait_for)
from tests.serve.support import LiveServer, gray_photo
from tests.serve.test_hints import HintRecording
from tests.support import hinted_colorizer, photo_rgb, trained_workdir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studio(studio_colorizer):
    server = LiveServer(create_app(studio_colorizer))
    yield server
    server.close()


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "profile", tmp_path / "downloads")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio_photos")
    Image.fromarray(gray_photo(1000, 750)).save(folder / "grandma.png")
    Image.fromarray(photo_rgb(300, 400, seed=3)).save(folder / "beach.jpg", quality=90)
    return folder


def canvas_pixels(driver, canvas: str) -> np.ndarray:
    url = driver.execute_script(f"return document.getElementById('{canvas}').toDataURL()")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def markers(driver) -> list[tuple[str, int, int]]:
    """(colour, x, y) of each hint marker, read from its label."""
    labels = driver.execute_script("return [...document.querySelectorAll('#markers .marker')]"
                                   ".map((m) => m.getAttribute('aria-label'))")
    return [(c, int(x), int(y)) for c, x, y in
            (re.fullmatch(r"Hint \d+: (#[0-9a-f]{6}) at (\d+), (\d+)", label).groups()
             for label in labels)]


def choose(driver, name: str) -> None:
    """Show the photo `name` (its list entry is redrawn as previews arrive: retry)."""
    def attempt():
        try:
            entry = driver.find_element(By.XPATH,
                                        f"//ol[@id='list']//button[contains(., '{name}')]")
            entry.click()
            return entry.get_attribute("aria-current") == "true"
        except StaleElementReferenceException:
            return False
    wait_for(attempt, what=f"{name} on screen")


# Holds back every preview request by 3 s (full-size requests pass): a photo whose hints
# just changed then stays "colouring" long enough for a test to act meanwhile.
SLOW_PREVIEWS = """
const send = window.fetch;
window.fetch = async (url, options = {}) => {
  if (options.body instanceof FormData && options.body.has("preview")) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  return send(url, options);
};
"""


def click(driver, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()


def drag_marker(driver, dx: int) -> None:
    """Drag the first hint marker `dx` pixels to the right (again if a preview arriving
    redrew the markers between finding it and dragging it)."""
    def attempt():
        try:
            marker = driver.find_element(By.CSS_SELECTOR, "#markers .marker")
            ActionChains(driver).drag_and_drop_by_offset(marker, dx, 0).perform()
            return True
        except StaleElementReferenceException:
            return False
    wait_for(attempt, what="a hint marker to drag")


def press_on_marker(driver, key: str) -> None:
    """Focus the first hint marker and press `key` on whatever has the focus: a preview
    arriving redraws the markers and the page keeps the focus on the redrawn one, as a
    keyboard user needs (a held element reference would go stale instead)."""
    driver.execute_script("document.querySelector('#markers .marker').focus()")
    ActionChains(driver).send_keys(key).perform()


def test_the_page_colours_a_photo_with_no_console_errors(browser, studio, photos):
    open_with(browser, studio, photos / "grandma.png")
    assert console_errors(browser) == []
    colour, gray = canvas_pixels(browser, "colour"), canvas_pixels(browser, "gray")
    assert colour.shape == gray.shape == (750, 1000, 3)
    assert np.abs(colour[..., 0] - colour[..., 2]).max() > 10  # colour, not gray
    assert np.ptp(gray, axis=-1).max() == 0  # the gray side is gray...
    error = np.abs(gray[..., 0] - gray_photo(1000, 750))  # ...and the photo's own
    assert error.mean() < 1 and error.max() <= 4


def test_hints_are_preset_to_the_prediction_and_can_be_moved_removed_and_undone(
        browser, studio, photos):
    open_with(browser, studio, photos / "grandma.png")
    stage = browser.find_element(By.ID, "stage")
    ActionChains(browser).move_to_element_with_offset(stage, -100, 60).click().perform()
    ((color, x, y),) = markers(browser)
    box = stage.rect  # the click, from the stage's centre, in the photo's 1000 x 750 pixels
    assert abs(x - ((box["width"] / 2 - 100) / box["width"] * 1000 - 0.5)) <= 2
    assert abs(y - ((box["height"] / 2 + 60) / box["height"] * 750 - 0.5)) <= 2
    assert browser.find_element(By.ID, "hint-panel").is_displayed()
    preset = browser.find_element(By.ID, "hint-color").get_attribute("value")
    side = max(canvas_pixels(browser, "colour").shape)
    with open(photos / "grandma.png", "rb") as photo:
        preview = httpx2.post(f"{studio.url}/api/colorize", data={"preview": str(side)},
                              files={"image": photo}, timeout=60)
    predicted = np.asarray(Image.open(io.BytesIO(preview.content)))[y, x]  # full size here
    assert preset == color == "#" + "".join(f"{v:02x}" for v in predicted)

    click(browser, "hint-remove")
    assert markers(browser) == []
    click(browser, "undo")
    assert markers(browser) == [(color, x, y)]

    drag_marker(browser, 50)
    ((_, moved_x, moved_y),) = markers(browser)
    assert moved_x > x + 30 and abs(moved_y - y) <= 2
    browser.execute_script(SLOW_PREVIEWS)
    press_on_marker(browser, Keys.ARROW_LEFT)
    assert markers(browser)[0][1] == moved_x - 1
    spinner = browser.find_element(By.ID, "spinner")
    wait_for(spinner.is_displayed, what="the recolouring to start")
    wait_for(lambda: not spinner.is_displayed(), what="the recoloured preview")
    focused = browser.execute_script("return document.activeElement.dataset.index")
    assert focused == "0"  # the redrawn marker kept the keyboard focus
    click(browser, "reset")
    assert markers(browser) == []
    click(browser, "undo")
    assert markers(browser)[0][1] == moved_x - 1
    press_on_marker(browser, Keys.DELETE)
    assert markers(browser) == []
    assert console_errors(browser) == []


def test_downloads_are_the_command_line_result_and_its_hints_file(
        browser, studio, photos, tmp_path, tmp_path_factory):
    open_with(browser, studio, photos / "grandma.png")
    click(browser, "add-hint")
    ((color, x, y),) = markers(browser)
    click(browser, "download-hints")
    hints_file = downloaded(tmp_path / "downloads", "grandma-hints.json")
    document = json.loads(hints_file.read_text())
    assert list(document) == ["grandma.png"]
    (hint,) = hints_lib.parse(document["grandma.png"], "downloaded")
    assert (hint.x, hint.y, hint.color, hint.radius) == (x, y, color, hints_lib.DEFAULT_RADIUS)
    hints_lib.check_inside([hint], 1000, 750, "downloaded")

    click(browser, "download")
    result = downloaded(tmp_path / "downloads", "grandma-colour.png")
    assert cli.main(["colorize", f"--checkpoint={trained_workdir(tmp_path_factory)}",
                     f"--input={photos / 'grandma.png'}", f"--output={tmp_path / 'cli'}",
                     f"--hints={hints_file}", "--backend=jax"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(result)),
                                  np.asarray(Image.open(tmp_path / "cli" / "grandma.png")))
    assert console_errors(browser) == []


def test_download_all_zips_every_photo_and_the_hints(browser, studio, photos, tmp_path):
    """The zip holds every coloured photo, also one still being re-coloured after a hint
    edit (a quick click on "Download all" used to leave it out, and its hints with it)."""
    open_with(browser, studio, photos / "grandma.png", photos / "beach.jpg")
    assert browser.find_element(By.ID, "count").text == "2 of 2 coloured"
    choose(browser, "grandma.png")
    browser.execute_script(SLOW_PREVIEWS)
    click(browser, "add-hint")
    wait_for(lambda: "colouring" in texts(browser, "#list .status"),
             what="grandma.png re-colouring")
    Select(browser.find_element(By.ID, "format")).select_by_value("jpg")
    click(browser, "download-all")
    archive = downloaded(tmp_path / "downloads", "jaxcolor-photos.zip")
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.testzip() is None
        assert sorted(zipped.namelist()) == ["beach-colour.jpg", "grandma-colour.jpg",
                                             "hints.json"]
        sizes = {n: Image.open(zipped.open(n)).size for n in zipped.namelist()
                 if n.endswith(".jpg")}
        hints_file = json.loads(zipped.read("hints.json"))
    assert sizes == {"beach-colour.jpg": (400, 300), "grandma-colour.jpg": (1000, 750)}
    assert list(hints_file) == ["grandma.png"] and len(hints_file["grandma.png"]) == 1


def test_at_phone_width_nothing_overflows(tmp_path, studio, photos):
    driver = chromium(tmp_path / "profile", tmp_path / "downloads", size=(390, 844), phone=True)
    try:
        open_with(driver, studio, photos / "grandma.png")
        assert driver.execute_script("return window.innerWidth") == 390
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        stage = driver.find_element(By.ID, "stage").rect
        assert stage["width"] <= 390 and stage["height"] > 100
    finally:
        driver.quit()


def test_with_a_model_that_takes_hints_the_photo_recolours(browser, photos):
    model = HintRecording(hinted_colorizer())
    server = LiveServer(create_app(model))
    try:
        open_with(browser, server, photos / "beach.jpg")
        click(browser, "add-hint")  # at the centre: (200, 150)
        wait_for(lambda: any(hints for _, hints in model.received), what="the recolour request")
        wait_for(lambda: not browser.find_element(By.ID, "spinner").is_displayed(),
                 what="the spinner to go")
        (shape, (hint,)), = [(shape, hints) for shape, hints in model.received if hints]
        assert shape[:2] == (300, 400) and (hint.x, hint.y) == (200, 150)
        assert console_errors(browser) == []
    finally:
        server.close()
