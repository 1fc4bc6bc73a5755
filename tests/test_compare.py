"The interactive comparison (srgan_nb.compare): an offline HTML fragment whose slider, in a real headless Chromium, moves the wipe and changes the pixels shown."
import base64, io, os, re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skd

from srgan_nb.compare import comparison_html
from srgan_nb.images import bicubic_upscale, make_lr
from srgan_nb.demo import browser_missing, chromium_page

SCREENS = Path(os.environ.get('SRGAN_SCREENS', '/tmp/screens'))


def _images():
    hr = skd.astronaut()[0:200, 130:330]
    lr = make_lr(hr, 4)
    return {'LR': lr, 'bicubic': bicubic_upscale(lr, 4), 'SRGAN s2': np.ascontiguousarray(hr[:, ::-1]), 'HR': hr}


def test_fragment_embeds_each_image_once_at_true_size_and_loads_nothing():
    from srgan_nb.render import external_resources
    frag = comparison_html(_images(), title='astronaut', left='bicubic')
    srcs = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', frag)
    sizes = [Image.open(io.BytesIO(base64.b64decode(s))).size for s in srcs]
    assert sizes == [(50, 50), (200, 200), (200, 200), (200, 200)]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(srcs[3])))), _images()['HR'])
    assert external_resources(frag) == [] and '<script src' not in frag and '@media print' in frag
    with pytest.raises(ValueError, match='integer number'): comparison_html({'a': np.zeros((30, 30, 3), np.uint8), 'b': np.zeros((50, 50, 3), np.uint8)})


@pytest.fixture
def page():
    if why := browser_missing(): pytest.skip(why)
    with chromium_page(width=1100, height=560) as page:
        yield page


def _pixels(png: bytes):
    return np.asarray(Image.open(io.BytesIO(png)).convert('RGB')).astype(int)


def test_slider_moves_the_wipe_and_changes_the_image_in_chromium(tmp_path, page):
    html = tmp_path/'page.html'
    html.write_text('<!doctype html><meta charset="utf-8"><body>' + comparison_html(_images(), title='astronaut', left='bicubic', right='SRGAN s2') + '</body>')
    page.goto(html.as_uri())
    wipe, view = page.locator('.srgan-cmp-wipe'), page.locator('.srgan-cmp-view')
    assert wipe.input_value() == '500'
    top = "document.querySelector('.srgan-cmp img[data-key=\"SRGAN s2\"]').style.clipPath"
    assert page.evaluate(top) == 'inset(0px 0px 0px 50%)'
    before = _pixels(view.screenshot())
    SCREENS.mkdir(parents=True, exist_ok=True); page.screenshot(path=SCREENS/'compare_before.png', full_page=True)
    s = wipe.bounding_box()
    wipe.drag_to(wipe, source_position=dict(x=s['width'] / 2, y=s['height'] / 2), target_position=dict(x=s['width'] * 0.9, y=s['height'] / 2))   # the thumb to the right
    value = int(wipe.input_value())
    assert value > 800, value
    assert page.evaluate(top) == f'inset(0px 0px 0px {value / 10:g}%)'
    after = _pixels(view.screenshot())
    page.screenshot(path=SCREENS/'compare_after_slider.png', full_page=True)
    # between the old and the new wipe line the right image (mirrored HR) was shown and now the left (bicubic) is
    w, h = view.bounding_box()['width'], view.bounding_box()['height']
    band = (slice(10, int(h) - 10), slice(int(w * 0.55), int(w * 0.8)))
    assert np.abs(after[band] - before[band]).mean() > 5
    assert np.abs(after[:, :int(w * 0.45)] - before[:, :int(w * 0.45)]).mean() < 1     # left of both lines: unchanged
    # the dropdown picks another method, and a drag on the image moves the wipe too
    page.select_option('.srgan-cmp-b', 'HR')
    assert page.evaluate("document.querySelector('.srgan-cmp img[data-key=\"HR\"]').style.display") == 'block'
    assert page.evaluate("document.querySelector('.srgan-cmp img[data-key=\"SRGAN s2\"]').style.display") == 'none'
    view.drag_to(view, source_position=dict(x=w * 0.7, y=h / 2), target_position=dict(x=w * 0.2, y=h / 2))
    assert int(wipe.input_value()) == pytest.approx(200, abs=15)
    assert 'url("data:image/png' in page.evaluate("document.querySelector('.srgan-cmp-lens div').style.backgroundImage")
    page.screenshot(path=SCREENS/'compare_after_drag.png', full_page=True)
