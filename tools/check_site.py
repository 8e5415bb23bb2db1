"""Browser check of the built site: every page of `_docs/` is opened in headless Chromium.

A page fails on an image that does not load, an internal link (or #anchor) that does not resolve, a JavaScript
error, or a Python traceback / error output in the page. The results page must show at least one table and the
figures, and gets a screenshot (static/site_results.png by default). Chromium comes from Debian's package
(`apt-get install chromium`), installed here when missing. Exit status 1 with the list of problems.
"""
from __future__ import annotations
import argparse, asyncio, base64, functools, http.server, json, os, re, shutil, socket, subprocess, sys, tempfile
import threading, time, urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit, unquote

ROOT = Path(__file__).resolve().parent.parent
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-dev-shm-usage', '--hide-scrollbars', '--mute-audio']


def find_chromium(install:bool=True)->str:
    "Path of Chromium; installs Debian's package when missing (needs root and apt)."
    for n in ('chromium', 'chromium-browser', 'google-chrome'):
        if p := shutil.which(n): return p
    if not install: raise SystemExit("Chromium not found: apt-get install chromium")
    print("Chromium not found: installing Debian's package (apt-get install chromium)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    sudo = [] if os.geteuid() == 0 else ['sudo']
    subprocess.run(sudo + ['apt-get', 'update', '-q'], check=True, env=env)
    subprocess.run(sudo + ['apt-get', 'install', '-y', '-q', 'chromium'], check=True, env=env)
    return find_chromium(install=False)


def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

def serve(folder:Path):
    "Serve `folder` on 127.0.0.1 in a thread; returns (server, base url)."
    port = free_port()
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{port}/'


class _Refs(HTMLParser):
    "Links, images and element ids of a page, from its HTML."
    def __init__(self):
        super().__init__(); self.links, self.imgs, self.ids = [], [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        if tag == 'a' and a.get('href'): self.links.append(a['href'])
        if tag == 'img' and a.get('src'): self.imgs.append(a['src'])

@functools.lru_cache(None)
def fetch(url:str):
    "Status and text of `url` (no fragment)."
    try:
        with urllib.request.urlopen(url, timeout=20) as r: return r.status, r.read().decode('utf-8', 'replace')
    except urllib.error.HTTPError as e: return e.code, ''
    except Exception as e: return 0, str(e)


class CDP:
    "A minimal Chrome DevTools Protocol client over one page target (Python `websockets`)."
    def __init__(self, ws): self.ws, self.n, self.events, self.pending = ws, 0, [], {}
    async def send(self, method, **params):
        self.n += 1; i = self.n
        await self.ws.send(json.dumps(dict(id=i, method=method, params=params)))
        while True:
            m = json.loads(await self.ws.recv())
            if m.get('id') == i:
                if 'error' in m: raise RuntimeError(f"{method}: {m['error']}")
                return m.get('result', {})
            self.events.append(m)
    async def wait_for(self, method, timeout=60):
        t0 = time.time()
        while True:
            for k, e in enumerate(self.events):
                if e.get('method') == method: return self.events.pop(k)
            left = timeout - (time.time() - t0)
            if left <= 0: raise TimeoutError(method)
            self.events.append(json.loads(await asyncio.wait_for(self.ws.recv(), left)))


_PAGE_JS = r"""(() => {
  const imgs = [...document.images].map(i => ({src: i.getAttribute('src').slice(0, 120), ok: i.complete && i.naturalWidth > 0}));
  const text = document.body ? document.body.innerText : '';
  return JSON.stringify({imgs, text_len: text.length, tables: document.querySelectorAll('main table, table').length,
    traceback: /Traceback \(most recent call last\)/.test(text),
    errors: [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"], .cell-output-error')]
            .map(e => e.innerText).filter(t => /(^|\n)\s*\w*(Error|Exception)\b[^\n]*:/.test(t)).map(t => t.slice(0, 300))});
})()"""


async def check_pages(chrome:str, base:str, pages:list[str], results:str, shot:Path, problems:list, report:dict,
                      shot_heading:str='Results'):
    import websockets
    port = free_port()
    prof = tempfile.mkdtemp(prefix='chromium-')
    proc = subprocess.Popen([chrome, *CHROME_FLAGS, f'--user-data-dir={prof}', f'--remote-debugging-port={port}',
                             '--remote-allow-origins=*', 'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                tabs = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=2).read())
                tab = next(t for t in tabs if t.get('type') == 'page'); break
            except Exception: await asyncio.sleep(0.3)
        else: raise SystemExit("Chromium did not start (no DevTools endpoint)")
        async with websockets.connect(tab['webSocketDebuggerUrl'], max_size=2**28) as ws:
            c = CDP(ws)
            for m in ('Page.enable', 'Runtime.enable', 'Log.enable'): await c.send(m)
            await c.send('Emulation.setDeviceMetricsOverride', width=1280, height=2000, deviceScaleFactor=1, mobile=False)
            for page in pages:
                url = urljoin(base, page)
                c.events.clear()
                await c.send('Page.navigate', url=url)
                try: await c.wait_for('Page.loadEventFired', timeout=60)
                except TimeoutError: problems.append(f'{page}: did not finish loading in 60 s'); continue
                await asyncio.sleep(0.3)
                r = await c.send('Runtime.evaluate', expression=_PAGE_JS, returnByValue=True)
                info = json.loads(r['result']['value'])
                for e in c.events:
                    if e.get('method') == 'Runtime.exceptionThrown':
                        d = e['params']['exceptionDetails']
                        problems.append(f"{page}: JavaScript error: {d.get('exception', {}).get('description', d.get('text'))[:200]}")
                    elif e.get('method') == 'Log.entryAdded' and e['params']['entry']['level'] == 'error':
                        en = e['params']['entry']
                        problems.append(f"{page}: browser error: {en.get('text', '')[:160]} {en.get('url', '')}")
                for im in info['imgs']:
                    if not im['ok']: problems.append(f"{page}: image does not load: {im['src']}")
                if info['traceback']: problems.append(f'{page}: a Python traceback is in the page')
                for t in info['errors']: problems.append(f'{page}: error output in the page: {t!r}')
                if info['text_len'] < 50: problems.append(f'{page}: page is (nearly) empty')
                report[page] = dict(images=len(info['imgs']), tables=info['tables'])
                if page == results:
                    if info['tables'] < 1: problems.append(f'{page}: the results page shows no table')
                    if len(info['imgs']) < 2: problems.append(f"{page}: the results page shows {len(info['imgs'])} figure(s), expected the figures")
                    h = await c.send('Runtime.evaluate', expression='document.documentElement.scrollHeight', returnByValue=True)
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    await c.send('Runtime.evaluate', returnByValue=True, expression=(
                        "(() => { const h = [...document.querySelectorAll('h1,h2,h3')].find(e => e.textContent.startsWith(%s));"
                        " if (h) h.scrollIntoView(); return !!h; })()" % json.dumps(shot_heading)))
                    await asyncio.sleep(0.3)
                    png = await c.send('Page.captureScreenshot', format='png', captureBeyondViewport=False)
                    shot.write_bytes(base64.b64decode(png['data']))
                    report['screenshot'] = f"{shot} (page height {h['result']['value']} px; 2000 px from the heading '{shot_heading}')"
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()
        shutil.rmtree(prof, ignore_errors=True)


def check_links(base:str, pages:list[str], problems:list):
    "Every internal link and image of every page resolves on the served site (anchors included)."
    n = 0
    for page in pages:
        st, text = fetch(urljoin(base, page))
        refs = _Refs(); refs.feed(text)
        for href in refs.links + refs.imgs:
            if href.startswith(('data:', 'mailto:', 'javascript:')): continue
            u = urlsplit(urljoin(urljoin(base, page), href))
            if not (u.scheme + '://' + u.netloc + '/').startswith(base.rstrip('/') + '/') or u.netloc != urlsplit(base).netloc:
                continue  # external: not checked (no internet here)
            n += 1
            target = u._replace(fragment='', query='').geturl()
            st, body = fetch(target)
            if st != 200: problems.append(f'{page}: broken internal link {href} (HTTP {st})'); continue
            if u.fragment and target.endswith('.html'):
                ids = _Refs(); ids.feed(body)
                if u.fragment not in ids.ids and unquote(u.fragment) not in ids.ids: problems.append(f'{page}: link {href}: no anchor #{u.fragment} in the target')
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--docs', default='_docs', help='built site folder')
    p.add_argument('--results', default='results.html', help='the results page (screenshot taken of it)')
    p.add_argument('--screenshot', default='static/site_results.png', help='where the screenshot goes')
    p.add_argument('--heading', default='Results', help='the screenshot starts at the heading starting so (the results page\'s title)')
    p.add_argument('--no-install', dest='install', action='store_false', help='do not apt-get install chromium')
    args = p.parse_args(argv)
    docs = (ROOT / args.docs).resolve()
    if not (docs / 'index.html').exists(): raise SystemExit(f"{docs}/index.html not found: run `make site` first")
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob('*.html'))
    problems = []
    if args.results not in pages: problems.append(f'results page {args.results} is missing from {docs}')
    chrome = find_chromium(args.install)
    srv, base = serve(docs)
    report = {}
    try:
        n = check_links(base, pages, problems)
        asyncio.run(check_pages(chrome, base, pages, args.results, (ROOT / args.screenshot), problems, report, args.heading))
    finally: srv.shutdown()
    ver = subprocess.run([chrome, '--version'], capture_output=True, text=True).stdout.strip()
    print(f"{ver}: {len(pages)} pages, {n} internal links and images checked on {base}")
    for k, v in report.items(): print(f"  {k}: {v}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s):")
        for x in problems: print(f"  - {x}")
        sys.exit(1)
    print("site check passed")

if __name__ == '__main__': main()
