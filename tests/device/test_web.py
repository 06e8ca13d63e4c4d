"""The setup-and-watch page (device/web.py) at work: setting a value and previewing an ROI on the frame
thread, the crops kept for review, a real headless Chromium that watches the live view, drags an ROI,
saves it, sets a value and labels a crop, and the measurements behind docs/WEB.md.

Every test here runs the real daemon on the bundled sample (``samples/meter``, looping) with the bundled
model: as a process where the test is about the outside (browser), in a thread where it needs the
service's insides. Nothing is mocked. The config edit is tests/device/test_web_config.py, the guards and
fuzzed requests tests/device/test_web_safety.py; what they share is tests/web_support.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import load_config
from device.web_feed import ROI_COLOUR
from tests.support import REPO, free_port, wait_until
from tests.web_support import SAMPLE, SAMPLE_ROI, answers, api_state, request, sample_config, start_daemon


def review_crop(directory: Path, raw: str = "004711") -> Path:
    """A crop the sensor kept for review (too unsure to label), written by the crop store itself."""
    from device.contract import prepare_crop
    from device.crop_files import REVIEW
    from device.crop_folder import CropStore

    frame = cv2.imread(str(SAMPLE / "frame_0000.jpg"))
    x, y, w, h = SAMPLE_ROI
    store = CropStore(directory / "state" / "crops" / "counter", 10 ** 7)
    return store.add(prepare_crop(frame[y:y + h, x:x + w])[:, :, 0], None, REVIEW, time.time(), raw, 0.31).path


# ---- the page's API on the frame thread -----------------------------------------------------------------


def test_set_value_and_preview_run_on_the_frame_thread(tmp_path, in_process):
    port = free_port()
    daemon = in_process(sample_config(tmp_path, port=port))
    wait_until(lambda: answers(port), timeout=60)
    csrf = api_state(port)["csrf"]
    head = {"X-CSRF-Token": csrf}
    status, _, body = request(port, "POST", "/api/preview", {"sensor": "counter", "roi": SAMPLE_ROI}, head)
    preview = json.loads(body)
    assert status == 200 and len(preview["value"]) == 6 and preview["crop"].startswith("data:image/png;base64,")
    assert preview["fit"] is None  # the configured window is tight already
    status, _, body = request(port, "POST", "/api/preview", {"sensor": "counter", "roi": [0, 0, 320, 180]}, head)
    fit = json.loads(body)["fit"]  # the whole frame is loose: the page suggests the counter window
    assert status == 200 and fit["value"].startswith("0047") and fit["roi"][2] * fit["roi"][3] < 0.5 * 320 * 180
    status, _, body = request(port, "POST", "/api/set_value", {"sensor": "counter", "value": "12"}, head)
    assert status == 200, body
    assert daemon.service.sensors[0].smoother.value == "12"
    status, _, body = request(port, "POST", "/api/set_value", {"sensor": "counter", "value": "12a"}, head)
    assert status == 400 and "digits" in json.loads(body)["error"]
    assert request(port, "POST", "/api/set_value", {"sensor": "nope", "value": "1"}, head)[0] == 404


def test_review_crops_are_listed_shown_and_labelled_by_name_only(tmp_path, in_process):
    port = free_port()
    crop = review_crop(tmp_path)
    in_process(sample_config(tmp_path, port=port, sensor="collect = true"))
    wait_until(lambda: answers(port), timeout=60)
    head = {"X-CSRF-Token": api_state(port)["csrf"]}
    assert api_state(port)["sensors"][0]["collect"] is True
    status, _, body = request(port, "GET", "/api/crops?sensor=counter")
    listed = json.loads(body)
    assert status == 200 and [c["name"] for c in listed["crops"]] == [crop.name] and listed["crops"][0]["raw"] == "004711"
    status, headers, png = request(port, "GET", f"/api/crop.png?sensor=counter&name={crop.name}")
    assert status == 200 and headers["Content-Type"] == "image/png" and png == crop.read_bytes()
    for name in ("../../digitcam.toml", f"../counter/{crop.name}", "%2e%2e%2fdigitcam.toml", crop.name + "/x", ""):
        assert request(port, "GET", f"/api/crop.png?sensor=counter&name={name}")[0] == 400, name
    assert request(port, "GET", f"/api/crop.png?sensor=..&name={crop.name}")[0] == 404
    label = {"sensor": "counter", "name": crop.name, "label": "004712"}
    assert request(port, "POST", "/api/label", label)[0] == 403  # no CSRF token
    assert request(port, "POST", "/api/label", {**label, "label": "47a"}, head)[0] == 400
    status, _, body = request(port, "POST", "/api/label", label, head)
    renamed = crop.with_name(json.loads(body)["name"])
    assert status == 200 and not crop.exists() and renamed.exists() and "-human-004712-" in renamed.name
    assert json.loads(request(port, "GET", "/api/crops?sensor=counter")[2])["counts"]["human"] == 1


# ---- the real browser -----------------------------------------------------------------------------------------


def chrome():
    """Headless Chromium through Debian's chromedriver (no driver download: Selenium Manager is not used)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh --dev)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    return webdriver.Chrome(service=DriverService(executable_path=driver), options=options)


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def pixel(image: np.ndarray, fx: float, fy: float, scale: tuple[float, float]) -> np.ndarray:
    """The screenshot's colour at frame coordinates (fx, fy): the middle of that frame pixel on screen."""
    return image[int((fy + 0.5) * scale[1]), int((fx + 0.5) * scale[0])].astype(int)


def test_browser_sees_the_live_view_draws_an_roi_saves_it_and_sets_the_value(tmp_path, daemons, browser,
                                                                            broker, subscribe):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    port = free_port()
    path = sample_config(tmp_path, port=port, mqtt=f'host = "{broker.host}"\nport = {broker.port}',
                         sensor="collect = true")
    crop = review_crop(tmp_path)
    sub = subscribe("digitcam/webtest/counter/state")
    daemon = start_daemon(daemons, path)
    browser.get(f"http://127.0.0.1:{port}/")
    live = browser.find_element(By.ID, "live")
    wait_until(lambda: browser.execute_script("return arguments[0].naturalWidth", live) == 320, timeout=30)
    browser.save_screenshot(str(tmp_path / "page.png"))
    card = browser.find_element(By.CSS_SELECTOR, '.card[data-sensor="counter"]')
    wait_until(lambda: len(card.find_element(By.CLASS_NAME, "raw").text) > len("raw 004700"), timeout=30)
    assert card.find_element(By.CLASS_NAME, "raw").text.startswith("raw 00")  # the sample counts 0047xx
    assert "frames/s" in browser.find_element(By.ID, "stats").text

    # the live view is a camera frame with the boxes: outside the boxes the screenshot is one of the sample's
    # frames (each frame's own noise tells them apart), and on the boxes it is the ROI's and the box's colour
    shot = cv2.imdecode(np.frombuffer(live.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
    scale = (shot.shape[1] / 320, shot.shape[0] / 180)
    ys, xs = ((np.arange(n) + 0.5) * s for n, s in ((180, scale[1]), (320, scale[0])))
    seen = shot[ys.astype(int)][:, xs.astype(int)].astype(int)  # each frame pixel's middle on screen
    outside = np.ones((180, 320), bool)
    x, y, w, h = SAMPLE_ROI
    outside[max(0, y - 24): y + h + 3, max(0, x - 3): x + w + 3] = False  # the boxes, the digits, the label above
    diffs = sorted(np.abs(seen - cv2.imread(str(f)).astype(int))[outside].mean() for f in SAMPLE.glob("*.jpg"))
    assert diffs[0] < 6 and diffs[0] < 0.6 * diffs[1], diffs[:3]
    amber = np.median([pixel(shot, x - 1, fy, scale) for fy in range(y + 5, y + h - 5, 4)], axis=0)
    green = np.median([pixel(shot, x, fy, scale) for fy in range(y + 5, y + h - 5, 4)], axis=0)
    assert np.abs(amber - np.array(ROI_COLOUR)).max() < 70, amber
    assert green[1] > 150 and green[0] < 130 and green[2] < 130, green  # device.overlay's green box

    # drag a loose ROI on the image: the preview reads it and offers the fitted one; take it, save it, and
    # the next readings use it
    card.find_element(By.CLASS_NAME, "draw").click()
    canvas = browser.find_element(By.ID, "draw")
    rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", canvas)
    target = [20, 20, 280, 140]
    sx, sy = rect[0] / 320, rect[1] / 180
    start = (target[0] * sx - rect[0] / 2, target[1] * sy - rect[1] / 2)  # offsets from the canvas centre
    ActionChains(browser).move_to_element_with_offset(canvas, int(start[0]), int(start[1])).click_and_hold() \
        .move_by_offset(int(target[2] * sx / 2), int(target[3] * sy / 2)) \
        .move_by_offset(int(target[2] * sx / 2), int(target[3] * sy / 2)).release().perform()
    preview = card.find_element(By.CLASS_NAME, "preview")
    wait_until(preview.is_displayed, timeout=20)
    text = card.find_element(By.CSS_SELECTOR, ".preview .raw").text
    drawn = json.loads(text[: text.index("]") + 1])
    assert all(abs(a - b) <= 3 for a, b in zip(drawn, target)), (drawn, target)
    fit_button = card.find_element(By.CLASS_NAME, "fit")
    assert fit_button.is_displayed()
    offer = card.find_element(By.CLASS_NAME, "fittext").text
    fitted = json.loads(offer[offer.index("["): offer.index("]") + 1])
    assert " reads 0047" in offer and fitted[2] * fitted[3] < 0.5 * drawn[2] * drawn[3], offer
    fit_button.click()
    wait_until(lambda: card.find_element(By.CSS_SELECTOR, ".preview .raw").text.startswith(json.dumps(fitted)),
               timeout=20)
    assert " reads 0047" in card.find_element(By.CSS_SELECTOR, ".preview .raw").text  # the model reads the meter
    wait_until(lambda: not fit_button.is_displayed(), timeout=10)  # the fitted ROI is tight: nothing more to offer
    assert browser.execute_script("return arguments[0].naturalHeight",
                                  card.find_element(By.CSS_SELECTOR, ".preview img")) > 0
    drawn = fitted
    card.find_element(By.CLASS_NAME, "save").click()
    wait_until(lambda: "saved to" in card.find_element(By.CLASS_NAME, "msg").text, timeout=20)
    assert load_config(path).sensors[0].roi == tuple(drawn)
    assert "# the counter window" in path.read_text() and (tmp_path / "digitcam.toml.bak").exists()
    wait_until(lambda: api_state(port)["sensors"][0]["raw"]["box"] == drawn, timeout=30)
    wait_until(lambda: f"roi [{', '.join(map(str, drawn))}]" in card.find_element(By.CLASS_NAME, "roi").text,
               timeout=10)

    # set the meter's value: it is published on MQTT with the set_value flag
    field = card.find_element(By.CLASS_NAME, "setvalue")
    field.send_keys("005000")
    card.find_element(By.CLASS_NAME, "set").click()
    wait_until(lambda: "value set to 005000" in card.find_element(By.CLASS_NAME, "msg").text, timeout=20)
    message = wait_until(lambda: next((json.loads(p) for p in sub.payloads("digitcam/webtest/counter/state")
                                       if b'"set_value"' in p), None), timeout=20)
    assert message["value"] == "005000"
    wait_until(lambda: "published 005000" in card.find_element(By.CLASS_NAME, "flags").text, timeout=10)

    # label the crop the sensor kept for review
    card.find_element(By.CLASS_NAME, "showcrops").click()
    row = wait_until(lambda: card.find_elements(By.CSS_SELECTOR, f'.crop[data-name="{crop.name}"]'), timeout=20)[0]
    image = row.find_element(By.TAG_NAME, "img")
    wait_until(lambda: browser.execute_script("return arguments[0].naturalWidth", image) == 128, timeout=10)
    field = row.find_element(By.CLASS_NAME, "label")
    field.clear()
    field.send_keys("004712")
    row.find_element(By.CLASS_NAME, "savelabel").click()
    wait_until(lambda: not crop.exists(), timeout=20)
    assert [p.name for p in crop.parent.glob("*-human-004712-*.png")]
    (tmp_path / "page.png").write_bytes(browser.get_screenshot_as_png())
    assert daemon.proc.poll() is None and "Traceback" not in daemon.log()


# ---- the measurements behind docs/WEB.md ------------------------------------------------------------------


def run_bench(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


def test_bench_daemon_measures_frames_per_second_without_and_with_a_viewer():
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh --dev)")
    lines = run_bench("bench/daemon.py", "--quick", "--viewer", "--viewer-rounds", "1")  # 1 s segments
    row = next(line for line in lines if line.startswith("| ") and line.endswith(" |") and "%" in line)
    without, with_, _, _, received = (cell.strip() for cell in row.strip("|").split("|"))
    assert float(without) > 0 and float(with_) > 0
    assert 0 < float(received) <= 4.0 * 1.5  # the viewer got frames, at about the capped rate
    assert lines[-1].startswith("daemon: ") and "without a viewer" in lines[-1]


def test_bench_web_server_measures_the_standard_library_server():
    lines = run_bench("bench/web_server.py", "--quick")
    row = next(line for line in lines if line.startswith("| stdlib |"))
    rss, one, four = (float(cell) for cell in row.strip("|").split("|")[1:4])
    assert 0 < rss < 50 and one > 0 and four > 0 and row.endswith("| 0 |")
    assert lines[-1].startswith("web servers: stdlib ")
