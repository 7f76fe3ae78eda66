"""The README's picture of the studio (docs/studio.png), taken as the browser tests see it:

    python -m tests.serve.screenshot --checkpoint=/tmp/jaxcolor-demo --out=docs/studio.png

A checkpoint that colours plausibly makes the better picture (the demo's, trained in minutes
by the README's quick start); the photo is scikit-image's cat, which the demo never trains
on, made gray. Two hints are placed and the first one's panel left open.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.serve.app import create_app
from tests.serve.browser import chromium, open_with
from tests.serve.support import LiveServer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run workdir")
    parser.add_argument("--out", default="docs/studio.png", help="the PNG to write")
    args = parser.parse_args(argv)
    import skimage.data

    server = LiveServer(create_app(Colorizer.from_checkpoint(args.checkpoint)))
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "chelsea.png"
        Image.fromarray(skimage.data.chelsea()).convert("L").save(photo)
        driver = chromium(Path(tmp) / "profile", Path(tmp) / "downloads", size=(1280, 1000))
        try:
            open_with(driver, server, photo)
            stage = driver.find_element(By.ID, "stage")
            for dx, dy in ((150, -40), (-120, 90)):
                ActionChains(driver).move_to_element_with_offset(stage, dx, dy).click().perform()
            driver.find_element(By.CSS_SELECTOR, "#markers .marker").click()
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
            server.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
