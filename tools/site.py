"""`make site`: build the documentation site into `_docs/`.

With Quarto on PATH this is nbdev's own `nbdev_docs` (Quarto renders nbdev's processed notebooks; the pages show
the outputs stored in the notebooks), without its README step.
Without Quarto it builds the same pages offline:

1. execute every notebook (as `nbdev_test` does: cells flagged with `tst_flags` are skipped; notebooks whose
   `parameters` cell defines `runs` are executed with papermill on the run folder, so the results page shows the
   runs present now; other papermill notebooks run on their small defaults with `out` in a scratch folder), into
   `_proc/.exec/`;
2. process them with nbdev's notebook processors (`FilterDefaults`, the same `nbdev.serve_drv.main` that
   `proc_nbs` feeds to Quarto: show_doc rendered, hidden and export cells removed, frontmatter) into `_proc/`;
3. convert each with Jupyter's own HTML exporter (nbconvert, lab template) into `_docs/`, named as Quarto would
   name them (`00_data.ipynb` -> `data.html`), with a sidebar read from `nbs/sidebar.yml`, links between notebooks
   rewritten to the pages, and the images the pages reference copied beside them.

It says which of the two it used.
"""
from __future__ import annotations
import argparse, html, json, os, posixpath, re, shutil, subprocess, sys, time, traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- execution (one notebook, in a worker process)
def _params_cell(nb):
    "The cell tagged `parameters` (papermill), or None."
    return next((c for c in nb['cells'] if c['cell_type'] == 'code' and 'parameters' in c.get('metadata', {}).get('tags', [])), None)

def _defines(src:str, name:str)->bool: return re.search(rf'^\s*{name}\s*=', src, re.MULTILINE) is not None

def _execute(src:str, dst:str, params:dict|None, skip_flags:list[str]):
    "Execute notebook `src` into `dst`; returns (src, seconds, error or None)."
    t0 = time.time()
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + '.tmp')
    os.environ['IN_TEST'] = '1'
    try:
        if params is not None:  # papermill, on a copy whose nbdev_export cell does nothing
            import nbformat, papermill as pm
            nb = nbformat.read(src, as_version=4)
            for c in nb.cells:
                if c.cell_type == 'code' and 'nbdev_export' + '(' in c.source: c.source = '#| hide'
            inp = dst.with_name(dst.stem + '.input.ipynb')
            nbformat.write(nb, inp)
            try: pm.execute_notebook(str(inp), str(tmp), parameters=params, cwd=str(src.parent), progress_bar=False,
                                     kernel_name='python3', report_mode=False)
            finally: inp.unlink(missing_ok=True)
        else:  # what nbdev_test does, keeping the outputs
            from execnb.nbio import read_nb, write_nb
            from execnb.shell import CaptureShell
            from fastcore.xtras import working_directory
            from nbdev.process import extract_directives
            flags = set(skip_flags)
            nb = read_nb(src)  # cells keep their `#|` directives: nbdev's processing reads them next
            def _no_eval(cell):
                if cell.cell_type != 'code': return True
                if 'nbdev_export' + '(' in cell.source: return True
                d = extract_directives(cell, remove=False) or {}
                if d.get('eval:', [''])[0].lower() == 'false': return True
                return flags & d.keys()
            k = CaptureShell(src)
            with working_directory(src.parent): k.run_all(nb, exc_stop=True, preproc=_no_eval)
            write_nb(nb, tmp)
        os.replace(tmp, dst)
        return str(src), time.time() - t0, None
    except Exception:
        tmp.unlink(missing_ok=True)
        return str(src), time.time() - t0, traceback.format_exc()[-4000:]

def _process(src:str, dst:str):
    "nbdev's processing of one notebook (what `proc_nbs` hands to Quarto)."
    import nbdev.serve_drv
    from nbdev.processors import FilterDefaults
    try:
        nbdev.serve_drv.main((Path(src), Path(dst), FilterDefaults))
        return src, None
    except Exception: return src, traceback.format_exc()[-4000:]


def _in_subprocess(fn:str, *args):
    "Run `fn(*args)` of this file in a fresh Python (each notebook gets its own interpreter, as in nbdev_test)."
    r = subprocess.run([sys.executable, __file__, '--_worker', json.dumps([fn, args])], capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode or not lines or not lines[-1].startswith('RESULT '):
        return (str(args[0]), 0.0, f"worker failed (exit {r.returncode}):\n{r.stderr[-3000:]}")[:3 if fn == '_execute' else 2]
    return tuple(json.loads(lines[-1][7:]))

def _worker(spec:str):
    fn, args = json.loads(spec)
    res = {'_execute': _execute, '_process': _process}[fn](*args)
    sys.stdout.flush()
    print('\nRESULT ' + json.dumps(res), flush=True)


# ---------------------------------------------------------------- conversion helpers
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<link rel="icon" href="data:,"><link rel="stylesheet" href="{{ resources.site_root }}site.css">{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<header class="site-top"><a href="{{ resources.site_root }}index.html">{{ resources.site_title }}</a></header>
<div class="site-wrap">
<nav class="site-nav" aria-label="Pages">{{ resources.nav_html }}</nav>
<main class="site-main">
{%- if resources.page_title %}<div class="site-title"><h1>{{ resources.page_title }}</h1>
{%- if resources.page_desc %}<p class="site-desc">{{ resources.page_desc }}</p>{% endif %}</div>{% endif -%}
{%- endblock body_header -%}
{% block body_footer %}
<footer class="site-foot">{{ resources.footer }}</footer>
</main>
</div>
</body>
{% endblock body_footer %}
"""

_CSS = """
body.jp-Notebook { margin: 0; padding: 0; }
.site-top { background: #2780e3; padding: .6rem 1.2rem; }
.site-top a { color: #fff; font: 600 1.2rem system-ui, sans-serif; text-decoration: none; }
.site-wrap { display: flex; align-items: flex-start; }
.site-nav { flex: 0 0 230px; position: sticky; top: 0; max-height: 100vh; overflow-y: auto; padding: 1rem;
  font: .92rem system-ui, sans-serif; border-right: 1px solid #e5e5e5; box-sizing: border-box; }
.site-nav ul { list-style: none; padding-left: .6rem; margin: .2rem 0 .8rem; }
.site-nav > ul { padding-left: 0; }
.site-nav .sec { font-weight: 600; color: #555; margin-top: .6rem; }
.site-nav a { color: #2780e3; text-decoration: none; }
.site-nav a.current { font-weight: 700; color: #000; }
.site-main { flex: 1 1 auto; min-width: 0; padding: 0 1.5rem 2rem; }
.site-title h1 { margin-bottom: .2rem; }
.site-desc { color: #555; font-size: 1.1rem; margin-top: 0; }
.site-foot { color: #888; font: .8rem system-ui, sans-serif; margin-top: 2rem; }
.jp-RenderedHTMLCommon table { font-size: .85rem; }
"""

_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_dir = re.compile(r'^\s*#\|')

def _quarto_options(nb):
    """Apply the Quarto cell options nbdev's processors leave for Quarto (echo, output, include), strip `#|` lines."""
    cells = []
    for c in nb.cells:
        if c.cell_type != 'code': cells.append(c); continue
        lines = c.source.splitlines()
        opts = {}
        while lines and _re_dir.match(lines[0]):
            m = _re_opt.match(lines.pop(0))
            if m: opts[m.group(1)] = m.group(2).strip('"\'').lower()
        if opts.get('include') == 'false': continue
        c.source = '\n'.join(lines).strip('\n')
        tags = list(c.metadata.get('tags', []))
        if opts.get('echo') == 'false' or not c.source.strip() or 'injected-parameters' in tags: tags.append('site_hide_input')  # papermill's injected cell too
        if opts.get('output') == 'false': c.outputs = []
        c.metadata['tags'] = tags
        cells.append(c)
    nb.cells = cells
    return nb

_re_attr_link = re.compile(r'\[([^\]]*)\]\(([^)\s]+)\)\{([^}]*)\}')
_re_fence = re.compile(r'```.*?```', re.DOTALL)
_re_link_in_code = re.compile(r'\[`([^`\]]+)`\]\([^)\s]+\)')

def _pandoc_md(md:str)->str:
    "What Quarto (pandoc) reads in nbdev's show_doc markdown and commonmark does not: link attributes, links in code."
    md = _re_fence.sub(lambda m: _re_link_in_code.sub(r'\1', m.group(0)), md)
    return _re_attr_link.sub(lambda m: f'<a href="{html.escape(m.group(2))}" {m.group(3)}>{m.group(1)}</a>', md)

def _markdown_outputs(nb):
    for c in nb.cells:
        for o in c.get('outputs', []):
            d = o.get('data', {})
            if 'text/markdown' in d:
                md = d['text/markdown']
                d['text/markdown'] = _pandoc_md(''.join(md) if isinstance(md, list) else md)
    return nb

def _frontmatter(nb):
    "Take nbdev's frontmatter raw cell out of `nb`; returns its fields."
    import yaml
    for i, c in enumerate(nb.cells):
        s = c.source.strip()
        if c.cell_type == 'raw' and s.startswith('---') and s.endswith('---'):
            nb.cells.pop(i)
            return yaml.safe_load(s.strip('-')) or {}
    return {}

def _page_name(rel:Path)->Path:
    "Quarto's page for notebook `rel` (nbdev's rule: numeric prefix dropped, lower case)."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(rel)

def _sidebar_entries(path:Path):
    "nbs/sidebar.yml as a tree: [('page', rel) | ('section', title, [...])]."
    import yaml
    d = yaml.safe_load(path.read_text())
    try: contents = d['website']['sidebar']['contents']
    except (KeyError, TypeError): raise SystemExit(f"{path}: expected website: sidebar: contents:")
    def walk(items):
        out = []
        for it in items:
            if isinstance(it, str): out.append(('page', it))
            elif isinstance(it, dict) and 'section' in it: out.append(('section', it['section'], walk(it.get('contents', []))))
            elif isinstance(it, dict) and 'href' in it: out.append(('page', it['href']))
            else: raise SystemExit(f"{path}: cannot read sidebar entry {it!r}")
        return out
    return walk(contents)

def _nav_pages(tree):
    for e in tree:
        if e[0] == 'page': yield e[1]
        else: yield from _nav_pages(e[2])

def _nav_html(tree, pages:dict, here:Path)->str:
    "The sidebar for page `here` (a path under _docs); `pages` maps notebook rel path -> (page rel, title)."
    def link(rel):
        if rel not in pages: return f'<li>{html.escape(rel)} (missing)</li>'
        page, title = pages[rel]
        href = posixpath.relpath(page.as_posix(), here.parent.as_posix() or '.')
        cur = ' class="current"' if page == here else ''
        return f'<li><a href="{html.escape(href)}"{cur}>{html.escape(title)}</a></li>'
    def walk(items):
        out = []
        for e in items:
            if e[0] == 'page': out.append(link(e[1]))
            else: out.append(f'<li><div class="sec">{html.escape(e[1])}</div><ul>{"".join(walk(e[2]))}</ul></li>')
        return out
    return '<ul>' + ''.join(walk(tree)) + '</ul>'


def _rewrite(soup, src_nb:Path, page:Path, nbs:Path, docs:Path, pages:dict, site_url:str, problems:list):
    "Links between notebooks -> pages; site-url links -> local; relative images copied into _docs."
    from urllib.parse import urlsplit, unquote
    here = page.parent.as_posix() or '.'
    by_page = {p.as_posix(): p for p, _ in pages.values()}
    for a in soup.find_all('a', href=True):
        href = a['href']
        if site_url and href.startswith(site_url + '/'):
            u = urlsplit(href[len(site_url) + 1:])
            if u.path in by_page: a['href'] = posixpath.relpath(u.path, here) + (f'#{u.fragment}' if u.fragment else '')
            continue
        u = urlsplit(href)
        if u.scheme or u.netloc or not u.path: continue
        if u.path.endswith('.ipynb'):
            target = (src_nb.parent / unquote(u.path)).resolve()
            try: rel = target.relative_to(nbs.resolve()).as_posix()
            except ValueError: rel = None
            if rel in pages:
                a['href'] = posixpath.relpath(pages[rel][0].as_posix(), here) + (f'#{u.fragment}' if u.fragment else '')
            else: problems.append(f'{src_nb.name}: link to {href}, which is not a page of the site')
    for img in soup.find_all('img', src=True):
        s = img['src']
        u = urlsplit(s)
        if u.scheme or u.netloc or s.startswith('data:'): continue
        f = (src_nb.parent / unquote(u.path)).resolve()
        if not f.is_file(): problems.append(f'{src_nb.name}: image {s} not found ({f})'); continue
        try: rel = f.relative_to(nbs.resolve())
        except ValueError: rel = f.relative_to(ROOT)  # e.g. ../static/x.png -> _docs/static/x.png
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, docs / rel)
        img['src'] = posixpath.relpath(rel.as_posix(), here)


def _convert(proc_nb:Path, src_rel:Path, page:Path, fm:dict, nav_html:str, ctx:dict):
    "One processed notebook -> one HTML page under _docs."
    import nbformat
    from bs4 import BeautifulSoup
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    nb = nbformat.read(proc_nb, as_version=4)
    _frontmatter(nb)
    _quarto_options(nb)
    _markdown_outputs(nb)
    ex = HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'dp_site.html.j2': _TEMPLATE})],
                      template_file='dp_site.html.j2', exclude_input_prompt=True, exclude_output_prompt=True)
    ex.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'site_hide_input'}, enabled=True), enabled=True)
    depth = len(page.parent.parts)
    title = fm.get('title') or src_rel.stem
    res = dict(site_root='../' * depth, site_title=ctx['site_title'], nav_html=nav_html, page_title=title,
               page_desc=fm.get('description', ''), footer=ctx['footer'],
               metadata=dict(name=f"{title} – {ctx['site_title']}", path=str(ctx['nbs'] / src_rel.parent)))
    body, _ = ex.from_notebook_node(nb, resources=res)
    soup = BeautifulSoup(body, 'html.parser')
    for h in soup.find_all(['h1', 'h2', 'h3', 'h4']):  # Quarto's (lower-case) anchors, which nbdev's links use
        if h.get('id') and h['id'].lower() != h['id'] and not soup.find(id=h['id'].lower()):
            h.insert(0, soup.new_tag('span', id=h['id'].lower()))
    problems = []
    _rewrite(soup, ctx['nbs'] / src_rel, page, ctx['nbs'], ctx['docs'], ctx['pages'], ctx['site_url'], problems)
    out = ctx['docs'] / page
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(str(soup), encoding='utf-8')
    return problems


# ---------------------------------------------------------------- the build
def _newest_lib(cfg)->float:
    return max((p.stat().st_mtime for p in Path(cfg.lib_path).rglob('*.py')), default=0)

def build_offline(args, cfg):
    import nbformat
    from nbdev.doclinks import nbglob, _build_modidx
    nbs, docs = Path(cfg.nbs_path), Path(cfg.doc_path)
    proc, exe = ROOT / '_proc', ROOT / '_proc' / '.exec'
    runs = Path(args.runs).resolve()
    _build_modidx()
    srcs = [Path(p) for p in nbglob(nbs)]
    rels = sorted(p.relative_to(nbs) for p in srcs)
    flags = cfg.get('tst_flags', '').split()
    if args.runs and not any(runs.glob('*/*/result.json')):
        print(f"note: no run records under {runs} (run `make demo` or the sweeps first); the results page will say so")

    # 1. execute
    jobs, errors, lib_t = [], [], _newest_lib(cfg)
    for rel in rels:
        src, dst = nbs / rel, exe / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        nb = json.loads(src.read_text())
        pc = _params_cell(nb)
        psrc = ''.join(pc['source']) if pc else ''
        params = None
        if pc:  # papermill notebooks: the analysis reads `runs`; experiments write their record to a scratch `out`
            params = {k: v for k, v in (('runs', str(runs)), ('out', str(exe / 'out' / rel.with_suffix('')))) if _defines(psrc, k)}
        if args.no_exec and not (params and 'runs' in params): shutil.copy2(src, dst); continue
        fresh = dst.exists() and dst.stat().st_mtime >= max(src.stat().st_mtime, 0 if args.reuse else lib_t)
        if (not params or 'runs' not in params) and fresh and not args.force: continue
        jobs.append((str(src), str(dst), params, flags))
    if jobs:
        print(f"executing {len(jobs)} notebook(s) with {args.n_workers} worker(s): " + ', '.join(Path(j[0]).relative_to(nbs).as_posix() for j in jobs))
        with ThreadPoolExecutor(args.n_workers) as pool:
            for src, secs, err in pool.map(lambda j: _in_subprocess('_execute', *j), jobs):
                print(f"  {Path(src).relative_to(nbs)}: {'FAILED' if err else 'ok'} ({secs:.0f}s)", flush=True)
                if err:
                    errors.append(f"{src}:\n{err}")
                    if args.keep_going: shutil.copy2(src, exe / Path(src).relative_to(nbs))  # its stored outputs
        if errors and not args.keep_going:
            raise SystemExit("notebooks failed to execute (the site is not built):\n\n" + '\n\n'.join(errors))
        for e in errors: print(f"problem: notebook failed to execute; its page shows the outputs stored in it: {e}")

    # 2. nbdev's processing
    for rel in rels: (proc / rel).parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.n_workers) as pool:
        errs = [f"{s}:\n{e}" for s, e in pool.map(lambda r: _in_subprocess('_process', str(exe / r), str(proc / r)), rels) if e]
    if errs: raise SystemExit("nbdev's processing failed:\n\n" + '\n\n'.join(errs))

    # 3. pages
    fms = {}
    for rel in rels:
        nb = nbformat.read(proc / rel, as_version=4)
        fms[rel.as_posix()] = _frontmatter(nb)
    pages = {r: (rel_page(Path(r), fms[r]), fms[r].get('title') or Path(r).stem) for r in fms}
    tree = _sidebar_entries(nbs / 'sidebar.yml')
    listed = set(_nav_pages(tree))
    missing = sorted(listed - set(pages))
    if missing: raise SystemExit(f"nbs/sidebar.yml lists notebooks that do not exist: {', '.join(missing)}")
    extra = sorted(set(pages) - listed)
    if extra:
        print(f"note: not in nbs/sidebar.yml (listed under 'Other pages'): {', '.join(extra)}")
        tree = tree + [('section', 'Other pages', [('page', r) for r in extra])]
    if docs.exists(): shutil.rmtree(docs)
    docs.mkdir(parents=True)
    (docs / 'site.css').write_text(_CSS)
    ctx = dict(nbs=nbs, docs=docs, pages=pages, site_title=cfg.get('title', cfg.lib_name),
               site_url=(cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/'),
               footer=f"Built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with nbconvert from the notebooks in nbs/.")
    problems = []
    for rel in rels:
        r = rel.as_posix()
        page = pages[r][0]
        problems += _convert(proc / rel, rel, page, fms[r], _nav_html(tree, pages, page), ctx)
    for p in problems: print(f"problem: {p}")
    n = len(list(docs.rglob('*.html')))
    print(f"{n} pages in {docs.relative_to(ROOT)}/: " + ', '.join(p.as_posix() for p, _ in sorted(pages.values())))
    if problems: raise SystemExit(f"{len(problems)} problem(s) in the pages (listed above)")
    if jobs and errors: raise SystemExit(f"{len(errors)} notebook(s) failed to execute (listed above); the other pages are built")

def rel_page(rel:Path, fm:dict)->Path:
    "Page path under _docs for notebook `rel`, from nbdev's frontmatter (`output-file`) or nbdev's rule."
    of = fm.get('output-file')
    return rel.parent / of if of else _page_name(rel)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--runs', default='runs', help="run folder the analysis notebook reads (default: runs)")
    p.add_argument('--n_workers', type=int, default=2, help="notebooks executed in parallel")
    p.add_argument('--force', action='store_true', help="execute every notebook again (default: only those changed)")
    p.add_argument('--reuse', action='store_true', help="keep executed notebooks whose source is unchanged even if the library changed")
    p.add_argument('--keep-going', dest='keep_going', action='store_true',
                   help="build every page even if a notebook fails to execute (still exits 1)")
    p.add_argument('--no-exec', dest='no_exec', action='store_true', help="use the outputs stored in the notebooks (the results notebook still runs on --runs)")
    p.add_argument('--offline', action='store_true', help="build with nbconvert even where Quarto is installed")
    args = p.parse_args(argv)
    os.chdir(ROOT)
    from nbdev.config import get_config
    cfg = get_config()
    t0 = time.time()
    if shutil.which('quarto') and not args.offline:
        # nbdev_docs without its README step (README.md is written by hand and by `python -m dp_leakage.analysis`)
        from nbdev.quarto import _pre_docs, _sprun
        cache, cfg, _ = _pre_docs(n_workers=args.n_workers)
        _sprun(f'cd "{cache}" && quarto render --no-cache')
        built, docs = cache / Path(cfg.doc_path).name, Path(cfg.doc_path)
        if built.exists():
            shutil.rmtree(docs, ignore_errors=True); shutil.move(str(built), str(docs))
        if not (docs / 'index.html').exists(): raise SystemExit(f"Quarto wrote no {docs}/index.html")
        print(f"built with Quarto (nbdev's processing + quarto render, as nbdev_docs) into {docs} in {time.time()-t0:.0f}s")
    else:
        build_offline(args, cfg)
        print(f"built with nbconvert (Quarto not found) into {Path(cfg.doc_path).relative_to(ROOT)}/ in {time.time()-t0:.0f}s")

if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--_worker': _worker(sys.argv[2])
    else: main()
