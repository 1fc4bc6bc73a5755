"`srgan-nb demo`: the page is offline, binds 127.0.0.1, upscales as `upscale` does (odd modes, size limit), and in a real headless Chromium takes an uploaded face and shows the result."
import io, json, os, urllib.error, urllib.parse, urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_nb import demo as D
from srgan_nb.model import Generator, save_generator
from srgan_nb.render import external_resources

SCREENS = Path(os.environ.get('SRGAN_SCREENS', '/tmp/screens'))


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    p = tmp_path/'tiny.pt'; save_generator(Generator(n_blocks=1, channels=8, bicubic_skip=True).eval(), p)
    return p


@pytest.fixture
def server(tiny, reports_tmp):
    srv = D.DemoServer(port=0, models=[str(tiny)], device='cpu', precision='fp32', max_bytes=2 * 10**6)
    D.start(srv)
    yield srv
    srv.shutdown(); srv.server_close()


def _png(a, **kw) -> bytes:
    buf = io.BytesIO(); Image.fromarray(a, **kw).save(buf, format='PNG'); return buf.getvalue()


def _post(srv, model, name, data):
    req = urllib.request.Request(srv.url + f'upscale?model={urllib.parse.quote(model)}&name={urllib.parse.quote(name)}', data=data)
    try:
        with urllib.request.urlopen(req, timeout=120) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read())


def test_binds_localhost_and_the_page_loads_nothing(server):
    assert server.server_address[0] == '127.0.0.1' and server.url.startswith('http://127.0.0.1:')
    with urllib.request.urlopen(server.url, timeout=30) as r:
        page, csp = r.read().decode(), r.headers['Content-Security-Policy']
    assert external_resources(page) == [] and '<script src' not in page
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp


@pytest.mark.parametrize('mode', ['RGB', 'RGBA', 'I;16', 'L'])
def test_odd_modes_give_what_upscale_writes(server, tiny, tmp_path, mode):
    "The downloaded file is byte for byte what `srgan-nb upscale` writes for the same file."
    from srgan_nb.cli import main
    rgb = (np.random.default_rng(1).random((16, 24, 3)) * 255).astype(np.uint8)
    arr = {'RGB': rgb, 'RGBA': np.dstack([rgb, np.full((16, 24), 90, np.uint8)]),
           'I;16': rgb[..., 1].astype(np.uint16) * 257, 'L': rgb[..., 2]}[mode]
    f = tmp_path/f'face_{mode.replace(";", "")}.png'; f.write_bytes(_png(arr))
    code, j = _post(server, str(tiny), f.name, f.read_bytes())
    assert code == 200, j
    with urllib.request.urlopen(server.url + j['download'], timeout=30) as r: got = r.read()
    assert main(['upscale', str(f), '-o', str(tmp_path/'cli.png'), '--model', str(tiny), '--device', 'cpu', '--precision', 'fp32']) == 0
    assert got == (tmp_path/'cli.png').read_bytes()
    assert Image.open(io.BytesIO(got)).size == (96, 64) and j['filename'] == f.stem + '_x4.png'


def test_refuses_too_large_images_unknown_models_and_other_hosts(server, tiny, monkeypatch):
    rgb = np.zeros((40, 40, 3), np.uint8)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 500)                  # 1600 pixels > 2 x 500: what upscale's reader refuses
    code, j = _post(server, str(tiny), 'big.png', _png(rgb))
    assert code == 400 and 'too large' in j['error'] and '1,000 pixels' in j['error']
    monkeypatch.undo()
    code, j = _post(server, str(tiny), 'big.bin', bytes(3 * 10**6))    # above the server's upload limit
    assert code == 413 and 'MB' in j['error']
    code, j = _post(server, '/etc/passwd', 'x.png', _png(rgb))         # only labels the server offered
    assert code == 400 and 'unknown model' in j['error']
    req = urllib.request.Request(server.url, headers={'Host': 'attacker.example'})
    with pytest.raises(urllib.error.HTTPError) as e: urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 403


def test_cli_demo_parses_and_defaults_to_localhost():
    from srgan_nb.cli import build_parser, cmd_demo
    a = build_parser().parse_args(['demo'])
    assert (a.host, a.port, a.model, a.func) == ('127.0.0.1', 8000, None, cmd_demo)


def _face(tmp_path) -> Path:
    "A faces-utk photo when the shared data is here, else the astronaut of scikit-image (an 80x80 LR face)."
    from srgan_nb.config import shared_data
    sd = shared_data()
    photos = sorted((sd/'faces-utk').rglob('*.jpg'))[:1] if sd and (sd/'faces-utk').is_dir() else []
    return photos[0] if photos else D.sample_face(tmp_path/'face.png')


def test_demo_page_upscales_an_uploaded_face_in_chromium(tmp_path, reports_tmp):
    if why := D.browser_missing(): pytest.skip(why)
    face = _face(tmp_path)
    w, h = Image.open(face).size
    model = 'gan' if 'gan' in D.model_choices() else None
    srv = D.DemoServer(port=0, models=[model] if model else (), device='cpu', precision='fp32')
    D.start(srv)
    try:
        with D.chromium_page(width=1280, height=1000, timeout=300) as page:
            page.goto(srv.url)
            assert page.title() == 'srgan-nb demo' and page.locator('#result > *').count() == 0
            page.set_input_files('#file', face)
            page.locator('#download:not([hidden]), #error:not(:empty)').first.wait_for()   # the result, or a message
            assert page.text_content('#error') == ''
            key = srv.default
            sr = f"document.querySelector('.srgan-cmp img[data-key=\"{key}\"]')"
            assert page.evaluate(f"[{sr}.naturalWidth, {sr}.naturalHeight, {sr}.style.display]") == [4 * w, 4 * h, 'block']
            assert page.input_value('.srgan-cmp-a') == 'bicubic'
            assert 'x4.png' in page.get_attribute('#download', 'download')
            size = page.evaluate("fetch(document.querySelector('#download').href).then(r => r.blob()).then(b => b.size)")
            assert size > 1000
            view = page.locator('.srgan-cmp-view'); v = view.bounding_box()
            view.drag_to(view, source_position=dict(x=v['width'] * 0.5, y=v['height'] * 0.4), target_position=dict(x=v['width'] * 0.3, y=v['height'] * 0.4))
            assert int(page.input_value('.srgan-cmp-wipe')) == pytest.approx(300, abs=15)
            SCREENS.mkdir(parents=True, exist_ok=True); page.screenshot(path=SCREENS/'demo_result.png', full_page=True)
    finally:
        srv.shutdown(); srv.server_close()


def _raw(srv, headers: str, body: bytes = b'', timeout: float = 20) -> tuple[int, str]:
    "A hand-made POST on a raw loopback socket: (status, reason text), or (0, '') when the server answered nothing."
    import socket
    host, port = srv.server_address[:2]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"POST /upscale HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode() + body)
        s.shutdown(socket.SHUT_WR)
        data = b''
        while (chunk := s.recv(65536)): data += chunk
    if not data: return 0, ''
    head, _, rest = data.partition(b'\r\n\r\n')
    return int(head.split()[1]), json.loads(rest or b'{}').get('error', '')


@pytest.mark.parametrize('headers,code,says', [
    ('', 411, 'Content-Length header is required'),
    ('Content-Length: -1\r\n', 400, 'negative'),
    ('Content-Length: abc\r\n', 400, 'not a number'),
    ('Content-Length: 99999999999\r\n', 413, 'MB'),
    ('Transfer-Encoding: chunked\r\n', 411, 'not in chunks'),
])
def test_bad_content_length_gets_a_short_answer(server, headers, code, says):
    "Whatever the headers say, the server reads at most its limit and answers with a reason, never a traceback or silence."
    got, reason = _raw(server, headers, b'x' * 5000)
    assert (got, says in reason) == (code, True), (got, reason)


def test_error_messages_show_no_python_reprs(server, tiny):
    code, j = _post(server, str(tiny), 'junk.png', b'not an image at all' * 10)
    assert code == 400 and 'not a readable image' in j['error'] and 'object at 0x' not in j['error'], j


def test_the_strength_dial_gives_what_upscale_strength_writes(reports_tmp, tmp_path):
    "strength=0.5 on the shipped models: the download is what `upscale --strength 0.5` writes; a strength off the dial is refused in words."
    from srgan_nb.cli import main
    srv = D.DemoServer(port=0, device='cpu', precision='fp32')
    D.start(srv)
    try:
        f = tmp_path/'face.png'; f.write_bytes(_png((np.random.default_rng(2).random((16, 20, 3)) * 255).astype(np.uint8)))
        req = lambda s: urllib.request.Request(srv.url + f'upscale?model=gan&strength={s}&name=face.png', data=f.read_bytes())
        with urllib.request.urlopen(req('0.5'), timeout=120) as r: j = json.loads(r.read())
        assert 'gan at strength 0.5' in j['summary']
        with urllib.request.urlopen(srv.url + j['download'], timeout=30) as r: got = r.read()
        assert main(['upscale', str(f), '-o', str(tmp_path/'cli.png'), '--strength', '0.5', '--device', 'cpu', '--precision', 'fp32']) == 0
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(got))), np.asarray(Image.open(tmp_path/'cli.png')))
        with pytest.raises(urllib.error.HTTPError) as e: urllib.request.urlopen(req('7'), timeout=30)
        assert e.value.code == 400 and 'from 0 (the SRResNet) to 1' in json.loads(e.value.read())['error']
        with urllib.request.urlopen(srv.url, timeout=30) as r: assert 'id="strength"' in r.read().decode()
    finally:
        srv.shutdown(); srv.server_close()
