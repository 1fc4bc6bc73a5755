"The interactive comparison (srgan_nb.compare): an offline HTML fragment whose slider, in a real headless Chromium, moves the wipe and changes the pixels shown."
import base64, io, os, re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skd

from srgan_nb.compare import comparison_html
from srgan_nb.data import bicubic_upscale, make_lr
from srgan_nb.demo import Chromium, find_chromium

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
def browser():
    if not find_chromium():
        pytest.skip('no Chromium installed (apt-get install chromium; or set SRGAN_CHROMIUM): the browser tests need one')
    with Chromium(width=1100, height=560) as b:
        yield b


def _view(b):
    return b.js("(r => [r.left, r.top, r.width, r.height])(document.querySelector('.srgan-cmp-view').getBoundingClientRect())")


def _shot(b, x, y, w, h):
    "The page's pixels in a box, as an array."
    png = base64.b64decode(b.send('Page.captureScreenshot', format='png', clip=dict(x=x, y=y, width=w, height=h, scale=1))['data'])
    return np.asarray(Image.open(io.BytesIO(png)).convert('RGB')).astype(int)


def test_slider_moves_the_wipe_and_changes_the_image_in_chromium(tmp_path, browser):
    page = tmp_path/'page.html'
    page.write_text('<!doctype html><meta charset="utf-8"><body>' + comparison_html(_images(), title='astronaut', left='bicubic', right='SRGAN s2') + '</body>')
    b = browser.open(page.as_uri())
    assert b.js("document.querySelector('.srgan-cmp-wipe').value") == '500'
    top = "document.querySelector('.srgan-cmp img[data-key=\"SRGAN s2\"]').style.clipPath"
    assert b.js(top) == 'inset(0px 0px 0px 50%)'
    x, y, w, h = _view(b)
    before = _shot(b, x, y, w, h)
    SCREENS.mkdir(parents=True, exist_ok=True); b.screenshot(SCREENS/'compare_before.png')
    sx, sy, sw, sh = b.js("(r => [r.left, r.top, r.width, r.height])(document.querySelector('.srgan-cmp-wipe').getBoundingClientRect())")
    b.drag(sx + sw / 2, sy + sh / 2, sx + sw * 0.9, sy + sh / 2)            # drag the slider's thumb to the right
    value = int(b.js("document.querySelector('.srgan-cmp-wipe').value"))
    assert value > 800, value
    assert b.js(top) == f'inset(0px 0px 0px {value / 10:g}%)'
    after = _shot(b, x, y, w, h)
    b.screenshot(SCREENS/'compare_after_slider.png')
    # between the old and the new wipe line the right image (mirrored HR) was shown and now the left (bicubic) is
    band = (slice(10, int(h) - 10), slice(int(w * 0.55), int(w * 0.8)))
    assert np.abs(after[band] - before[band]).mean() > 5
    assert np.abs(after[:, :int(w * 0.45)] - before[:, :int(w * 0.45)]).mean() < 1     # left of both lines: unchanged
    # the dropdown picks another method, and a drag on the image moves the wipe too
    b.js("(s => { s.value = 'HR'; s.dispatchEvent(new Event('change')); })(document.querySelector('.srgan-cmp-b'))")
    assert b.js("document.querySelector('.srgan-cmp img[data-key=\"HR\"]').style.display") == 'block'
    assert b.js("document.querySelector('.srgan-cmp img[data-key=\"SRGAN s2\"]').style.display") == 'none'
    b.drag(x + w * 0.7, y + h / 2, x + w * 0.2, y + h / 2)
    assert int(b.js("document.querySelector('.srgan-cmp-wipe').value")) == pytest.approx(200, abs=15)
    assert 'url("data:image/png' in b.js("document.querySelector('.srgan-cmp-lens div').style.backgroundImage")
    b.screenshot(SCREENS/'compare_after_drag.png')

