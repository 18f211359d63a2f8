#!/usr/bin/env node
// A notebook run the way a student runs it: JupyterLab in a real (headless) Chromium, the
// notebook opened, its kernel chosen, "Run All Cells" from the Run menu, then checks on what
// the page shows. Called by scripts/lab_check.sh, which finds the browser and playwright-core
// first (see there for the options); `node scripts/lab_check.mjs --help` lists them too.
//
// Modes:
//   NOTEBOOK                 run a temporary copy (outputs cleared) in JupyterLab and check it
//   --html FILE              open an exported HTML page offline (file://, network blocked) and
//                            check that its charts and tables render
//   --self-test              run the checker on small Python notebooks, one that must pass and
//                            two that must fail for each reason (no Rust compile needed)
//
// Exit status: 0 all checks passed, 1 a check failed, 2 bad usage or the set-up failed.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM_FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
// A line the trainer redraws in place. Lines matching it may appear on stderr, and at most
// --max-progress-lines of them may be visible in one output area at any moment.
const DEFAULT_PROGRESS = 'samples/s';

const USAGE = `usage:
  node scripts/lab_check.mjs NOTEBOOK [options]     run a copy of NOTEBOOK in JupyterLab and check it
  node scripts/lab_check.mjs --html FILE [options]  check an exported HTML page offline
  node scripts/lab_check.mjs --self-test            check the checker on two Python notebooks
options:
  --screenshot PNG          where to save the full-page screenshot
                            (default runs/lab_check/<notebook>.png, or <file>.png for --html)
  --charts N, --tables N    at least this many charts (SVG/PNG/JPEG images) and HTML tables must
                            render (default: as many as the notebook's saved outputs hold)
  --notebook NB             (--html) the notebook whose saved outputs give the expected counts
                            (default: the .ipynb beside FILE with the same name, if any)
  --kernel NAME             the kernel's display name to choose (default: Rust)
  --full                    run without DLKIT_QUICK=1 (the coursework configuration)
  --timeout S               seconds Run All may take (default 1800)
  --progress-pattern RE     what a progress line contains (default: ${DEFAULT_PROGRESS})
  --max-progress-lines N    progress lines one output area may show at once (default 1)
  --expect-live-progress    fail unless a progress line was seen while a cell ran
  --keep                    keep the temporary folder (JupyterLab log, notebook copy)`;

// ---------------------------------------------------------------------------------------------
// small helpers

const t0 = Date.now();
const phases = [];
function log(msg) { console.log(`lab_check: ${msg}`); }
async function phase(name, fn) {
  const start = Date.now();
  try {
    return await fn();
  } finally {
    const s = (Date.now() - start) / 1000;
    phases.push([name, s]);
    log(`phase "${name}" took ${s.toFixed(1)} s`);
  }
}
class SetupError extends Error {}
// JupyterLab servers started here (in their own process group), stopped if we are interrupted.
const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const lab of running) { try { process.kill(-lab.child.pid, 'SIGTERM'); } catch { /* gone */ } }
    console.error(`lab_check: interrupted (${signal})`);
    process.exit(130);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv) {
  const o = {
    notebook: null, html: null, selfTest: false, screenshot: null, charts: null, tables: null,
    expectFrom: null, kernel: 'Rust', full: false, timeout: 1800, progress: DEFAULT_PROGRESS,
    maxProgress: 1, expectLive: false, keep: false,
  };
  const value = (i, flag) => {
    if (i + 1 >= argv.length) throw new SetupError(`${flag} needs a value\n${USAGE}`);
    return argv[i + 1];
  };
  const count = (v, flag) => {
    if (!/^\d+$/.test(v)) throw new SetupError(`${flag} takes a whole number ≥ 0, not ${JSON.stringify(v)}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      case '--html': o.html = value(i, a); i++; break;
      case '--self-test': o.selfTest = true; break;
      case '--screenshot': o.screenshot = value(i, a); i++; break;
      case '--charts': o.charts = count(value(i, a), a); i++; break;
      case '--tables': o.tables = count(value(i, a), a); i++; break;
      case '--notebook': o.expectFrom = value(i, a); i++; break;
      case '--kernel': o.kernel = value(i, a); i++; break;
      case '--full': o.full = true; break;
      case '--timeout': o.timeout = count(value(i, a), a); i++; break;
      case '--progress-pattern': o.progress = value(i, a); i++; break;
      case '--max-progress-lines': o.maxProgress = count(value(i, a), a); i++; break;
      case '--expect-live-progress': o.expectLive = true; break;
      case '--keep': o.keep = true; break;
      default:
        if (a.startsWith('-')) throw new SetupError(`unknown option ${a}\n${USAGE}`);
        if (o.notebook) throw new SetupError(`one notebook at a time (got ${o.notebook} and ${a})`);
        o.notebook = a;
    }
  }
  const modes = [o.notebook, o.html, o.selfTest || null].filter((x) => x !== null).length;
  if (modes !== 1) throw new SetupError(`give exactly one of NOTEBOOK, --html FILE, --self-test\n${USAGE}`);
  try { new RegExp(o.progress); } catch (e) { throw new SetupError(`--progress-pattern: ${e.message}`); }
  return o;
}

function loadPlaywright() {
  const places = [
    import.meta.url,
    path.join(process.env.DLKIT_NODE_DIR || path.join(os.homedir(), '.cache', 'dlkit', 'node'), 'package.json'),
  ];
  for (const from of places) {
    try { return createRequire(from)('playwright-core'); } catch { /* try the next */ }
  }
  throw new SetupError('playwright-core not found (npm install --prefix ~/.cache/dlkit/node playwright-core)');
}

function chromiumPath() {
  const p = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(p)) throw new SetupError(`no Chromium at ${p} (apt-get install -y chromium, or set CHROMIUM)`);
  return p;
}

async function launch(playwright, userDataDir, viewport = { width: 1400, height: 1000 }) {
  return playwright.chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath(), headless: true, args: CHROMIUM_FLAGS, viewport,
  });
}

/// What the notebook's saved outputs hold, counted the way JupyterLab shows them: each output
/// is drawn from its richest type (HTML before SVG before PNG/JPEG before text).
function savedCounts(nb) {
  let charts = 0, tables = 0;
  for (const cell of nb.cells) {
    for (const out of cell.outputs || []) {
      const data = out.data || {};
      if ('text/html' in data) {
        const html = [].concat(data['text/html']).join('');
        tables += (html.match(/<table[\s>]/gi) || []).length;
      } else if ('image/svg+xml' in data || 'image/png' in data || 'image/jpeg' in data) {
        charts += 1;
      }
    }
  }
  return { charts, tables };
}

const sourceOf = (cell) => [].concat(cell.source || '').join('');

// ---------------------------------------------------------------------------------------------
// JupyterLab

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// Start JupyterLab serving `root` on a random loopback port with a random token, with its own
/// settings (notebook windowing off, so every cell is in the page; no news or update checks).
async function startLab(tmp, root, env) {
  const port = await freePort();
  const token = crypto.randomBytes(24).toString('hex');
  const settings = path.join(tmp, 'lab-settings');
  const put = (rel, obj) => {
    fs.mkdirSync(path.dirname(path.join(settings, rel)), { recursive: true });
    fs.writeFileSync(path.join(settings, rel), JSON.stringify(obj));
  };
  put('@jupyterlab/notebook-extension/tracker.jupyterlab-settings', { windowingMode: 'none' });
  put('@jupyterlab/apputils-extension/notification.jupyterlab-settings', { fetchNews: 'false', checkForUpdates: false });
  const kernelTmp = path.join(tmp, 'kernel-tmp');
  fs.mkdirSync(kernelTmp, { recursive: true });
  const logPath = path.join(tmp, 'jupyterlab.log');
  const logFd = fs.openSync(logPath, 'w');
  const args = [
    '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--ServerApp.port_retries=0',
    `--IdentityProvider.token=${token}`, `--ServerApp.root_dir=${root}`,
    `--LabApp.user_settings_dir=${settings}`, `--LabApp.workspaces_dir=${path.join(tmp, 'lab-workspaces')}`,
    ...(process.getuid && process.getuid() === 0 ? ['--allow-root'] : []),
  ];
  const child = spawn(process.env.PYTHON || 'python3', args, {
    // TMPDIR inside the temporary folder: evcxr builds each kernel's crate in a temporary
    // folder (hundreds of MB) that it leaves behind when it is stopped by a signal.
    env: { ...process.env, ...env, JUPYTER_RUNTIME_DIR: path.join(tmp, 'jupyter-runtime'), TMPDIR: kernelTmp },
    stdio: ['ignore', logFd, logFd], detached: true,
  });
  const url = `http://127.0.0.1:${port}`;
  const lab = { child, url, token, logPath, exited: null };
  running.add(lab);
  child.on('exit', (code, signal) => { lab.exited = signal || code; running.delete(lab); });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (lab.exited !== null) break;
    try {
      const r = await fetch(`${url}/api/status`, { headers: { Authorization: `token ${token}` } });
      if (r.ok) return lab;
    } catch { /* not listening yet */ }
    await sleep(300);
  }
  await stopLab(lab);
  throw new SetupError(`JupyterLab did not start on ${url} (exit: ${lab.exited}); its log:\n${tail(logPath, 30)}`);
}

/// Shut the kernels down through the server (so that they exit cleanly), then the server; a
/// server still running after 20 s is stopped with SIGTERM to its process group.
async function stopLab(lab) {
  if (!lab || lab.exited !== null) return;
  const api = (p, method) => fetch(`${lab.url}${p}`, { method, headers: { Authorization: `token ${lab.token}` } });
  try {
    const kernels = await (await api('/api/kernels', 'GET')).json();
    await Promise.all(kernels.map((k) => api(`/api/kernels/${k.id}`, 'DELETE').catch(() => {})));
    await api('/api/shutdown', 'POST');
  } catch { /* the server is gone or stuck: the signal below */ }
  for (let i = 0; i < 80 && lab.exited === null; i++) await sleep(250);
  if (lab.exited === null) {
    try { process.kill(-lab.child.pid, 'SIGTERM'); } catch { /* already gone */ }
  }
}

function tail(file, n) {
  try { return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return '(no log)'; }
}

/// What the page shows about the open notebook, read in the browser.
function readNotebook({ progress }) {
  const re = new RegExp(progress);
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell')].map((cell, index) => {
    const code = cell.classList.contains('jp-CodeCell');
    const prompt = code ? (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim() : '';
    const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')].map((o) => {
      const mime = o.getAttribute('data-mime-type') || '';
      const text = o.innerText || '';
      const imgs = [...o.querySelectorAll('img')];
      const svgs = [...o.querySelectorAll('svg')].filter((s) => !s.parentElement.closest('svg'));
      return {
        mime,
        text: text.length > 4000 ? text.slice(0, 2000) + '\n…\n' + text.slice(-2000) : text,
        progressLines: text.split('\n').filter((l) => re.test(l)).length,
        image: o.classList.contains('jp-RenderedSVG') || o.classList.contains('jp-RenderedImage'),
        imagesDrawn: imgs.filter((i) => i.complete && i.naturalWidth > 0).length
          + svgs.filter((s) => s.getBoundingClientRect().width > 0).length,
        images: imgs.length + svgs.length,
        tables: o.querySelectorAll('table').length,
      };
    });
    return { index, code, prompt, outputs };
  });
  return {
    dialog: (document.querySelector('.jp-Dialog .jp-Dialog-header')?.textContent || '').trim(),
    status: indicator?.getAttribute('data-status') || null,
    kernel: (panel.querySelector('.jp-Toolbar-kernelName')?.textContent || '').trim(),
    cells,
  };
}

async function chooseKernel(page, wanted) {
  const dialogSelect = async () => {
    const dialog = page.locator('.jp-Dialog');
    if (!(await dialog.count())) return false;
    const select = dialog.locator('select');
    if (!(await select.count())) return false;
    const labels = await select.locator('option').allTextContents();
    const label = labels.find((l) => l.trim() === wanted);
    if (!label) throw new SetupError(`no kernel named "${wanted}" in JupyterLab's list: ${labels.map((l) => l.trim()).join(', ')}`);
    await select.selectOption({ label });
    await dialog.locator('button.jp-mod-accept').click();
    return true;
  };
  // Either the kernel in the notebook's metadata starts by itself, or JupyterLab asks.
  const deadline = Date.now() + 60_000;
  let shown = '';
  while (Date.now() < deadline) {
    if (await dialogSelect()) { log(`kernel chosen in JupyterLab's "Select Kernel" dialog: ${wanted}`); break; }
    shown = (await page.locator('.jp-NotebookPanel .jp-Toolbar-kernelName').first().textContent().catch(() => '')).trim();
    if (shown && shown !== 'No Kernel' && shown !== 'Kernel') break;
    await sleep(300);
  }
  shown = (await page.locator('.jp-NotebookPanel .jp-Toolbar-kernelName').first().textContent().catch(() => '')).trim();
  if (shown !== wanted) {
    log(`the notebook opened with kernel "${shown || 'none'}"; choosing "${wanted}" from Kernel > Change Kernel…`);
    await clickMenu(page, 'Kernel', /^Change Kernel/);
    await page.locator('.jp-Dialog select').waitFor({ timeout: 30_000 });
    await dialogSelect();
  } else {
    log(`kernel: ${shown}`);
  }
  await page.waitForFunction(
    (w) => (document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName')?.textContent || '').trim() === w,
    wanted, { timeout: 60_000 },
  );
}

async function clickMenu(page, menu, item) {
  await page.locator('.lm-MenuBar-itemLabel', { hasText: new RegExp(`^${menu}$`) }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: item }).first().click();
}

/// Poll the page until every code cell has run (or Run All stopped), keeping the most progress
/// lines any output area showed at once, and whether a progress line was seen while running.
async function waitForRunAll(page, o, codeCells) {
  const deadline = Date.now() + o.timeout * 1000;
  let idlePolls = 0, polls = 0, livePolls = 0, lastNote = 0, died = null;
  let maxProgress = { lines: 0, cell: null, text: '' };
  let state;
  while (true) {
    state = await page.evaluate(readNotebook, { progress: o.progress });
    polls++;
    const running = state.cells.some((c) => c.code && c.prompt.includes('*'));
    for (const c of state.cells) {
      for (const out of c.outputs) {
        if (out.progressLines > maxProgress.lines) maxProgress = { lines: out.progressLines, cell: c.index, text: out.text };
        if (running && out.progressLines > 0 && c.prompt.includes('*')) livePolls++;
      }
    }
    const done = state.cells.filter((c) => codeCells.has(c.index) && /^\[\d+\]:?$/.test(c.prompt)).length;
    if (Date.now() - lastNote > 30_000) {
      lastNote = Date.now();
      const current = state.cells.find((c) => c.prompt.includes('*'));
      log(`  ${done}/${codeCells.size} code cells done, kernel ${state.status}${current ? `, cell ${current.index} running` : ''} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
    // Finished when nothing is queued and the kernel has stayed idle for 2 s (JupyterLab stops
    // Run All at a failing cell, so "every cell numbered" alone would wait for ever then).
    // A crashed kernel shows JupyterLab's "Kernel Restarting" (or "Kernel Dead") dialog; the
    // queued cells are dropped and the kernel may sit in "starting" for a long time after.
    if (!died && /^Kernel (Restarting|Dead|Died)/i.test(state.dialog)) died = state.dialog;
    if (!died && ['dead', 'autorestarting'].includes(state.status)) died = state.status;
    if (died) break;
    idlePolls = !running && state.status === 'idle' ? idlePolls + 1 : 0;
    if (idlePolls >= 8) break;
    if (Date.now() > deadline) {
      return { state, maxProgress, livePolls, polls, died, timedOut: true };
    }
    await sleep(250);
  }
  return { state, maxProgress, livePolls, polls, died, timedOut: false };
}

/// The checks on a finished run; returns the list of problems (empty when it passed).
function judge(o, run, codeCells, expected) {
  const problems = [];
  const { state } = run;
  if (run.timedOut) problems.push(`Run All did not finish within ${o.timeout} s`);
  if (run.died) problems.push(`the kernel died during the run (JupyterLab showed it as "${run.died}")`);
  const re = new RegExp(o.progress);
  let charts = 0, drawn = 0, tables = 0;
  for (const c of state.cells) {
    if (codeCells.has(c.index) && !/^\[\d+\]:?$/.test(c.prompt)) {
      problems.push(`cell ${c.index} did not run (its prompt shows "${c.prompt || 'nothing'}")`);
    }
    for (const out of c.outputs) {
      if (out.image) { charts += 1; drawn += out.imagesDrawn > 0 ? 1 : 0; }
      tables += out.tables;
      if (out.mime === 'application/vnd.jupyter.stderr') {
        const bad = out.text.split('\n').map((l) => l.trim())
          .filter((l) => l && !re.test(l) && !l.toLowerCase().startsWith('warning'));
        if (bad.length) problems.push(`cell ${c.index} shows an error or stderr output: ${bad.slice(0, 5).join(' | ')}`);
      }
    }
  }
  if (charts < expected.charts) problems.push(`${charts} charts rendered, expected at least ${expected.charts}`);
  if (drawn < charts) problems.push(`${charts - drawn} of ${charts} chart outputs hold no drawn image`);
  if (tables < expected.tables) problems.push(`${tables} tables rendered, expected at least ${expected.tables}`);
  if (run.maxProgress.lines > o.maxProgress) {
    const lines = run.maxProgress.text.split('\n').filter((l) => re.test(l));
    problems.push(
      `cell ${run.maxProgress.cell} showed ${run.maxProgress.lines} progress lines at once (at most ${o.maxProgress} allowed): `
      + `an update meant to redraw the line in place was printed as a new line; first ones: ${lines.slice(0, 3).join(' | ')}`,
    );
  }
  if (o.expectLive && run.livePolls === 0) {
    problems.push(`no progress line (/${o.progress}/) was visible while a cell ran (${run.polls} looks at the page)`);
  }
  return { problems, charts, tables };
}

async function screenshot(page, file) {
  // Fold the file browser away (clicking the open side tab closes it), for a wider notebook.
  const sideTab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current');
  if (await sideTab.count()) await sideTab.first().click({ timeout: 2000 }).catch(() => {});
  // JupyterLab scrolls inside the notebook panel, so a "full page" shot would stop at the
  // window: make the window as tall as the notebook first.
  const measure = () => page.evaluate(() => {
    const scroller = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
    const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
    if (!scroller || !cells.length) return 1000;
    scroller.scrollTop = 0;
    const bottom = cells[cells.length - 1].getBoundingClientRect().bottom;
    return Math.ceil(bottom + 40);
  });
  await page.setViewportSize({ width: 1400, height: Math.min(Math.max(await measure(), 1000), 16000) });
  await sleep(500);
  await measure(); // scroll to the top again: resizing may have moved the active cell into view
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot: ${file}`);
}

/// A folder that looks like the repository to a notebook in `<tmp>/<notebook folder name>/`:
/// the notebook's folder holds a copy of it (outputs cleared) and links to its other files;
/// the folder above links to the repository's top-level entries, so `../crates/dlkit` resolves
/// to the same real path (evcxr canonicalises it, which keeps its compile cache valid).
function stage(tmp, notebookPath) {
  const src = path.resolve(notebookPath);
  const srcDir = path.dirname(src);
  const parent = path.dirname(srcDir);
  const dir = path.join(tmp, 'tree', path.basename(srcDir));
  fs.mkdirSync(dir, { recursive: true });
  for (const entry of fs.readdirSync(parent)) {
    if (entry === path.basename(srcDir) || entry === '.git' || entry === 'runs') continue;
    fs.symlinkSync(path.join(parent, entry), path.join(tmp, 'tree', entry));
  }
  for (const entry of fs.readdirSync(srcDir)) {
    if (entry.endsWith('.ipynb') || entry.startsWith('.')) continue;
    fs.symlinkSync(path.join(srcDir, entry), path.join(dir, entry));
  }
  const nb = JSON.parse(fs.readFileSync(src, 'utf8'));
  const fresh = structuredClone(nb);
  for (const cell of fresh.cells) {
    if (cell.cell_type === 'code') { cell.outputs = []; cell.execution_count = null; }
  }
  fs.writeFileSync(path.join(dir, path.basename(src)), JSON.stringify(fresh, null, 1));
  return { nb, dir, name: path.basename(src) };
}

async function checkNotebook(playwright, o, tmp, notebookPath, { expectFail = false } = {}) {
  const { nb, dir, name } = stage(tmp, notebookPath);
  const codeCells = new Set(nb.cells.map((c, i) => [c, i]).filter(([c]) => c.cell_type === 'code' && sourceOf(c).trim()).map(([, i]) => i));
  const saved = savedCounts(nb);
  const expected = { charts: o.charts ?? saved.charts, tables: o.tables ?? saved.tables };
  log(`${name}: ${codeCells.size} code cells; expecting ≥ ${expected.charts} charts and ≥ ${expected.tables} tables`
    + `${o.charts === null && o.tables === null ? ' (from its saved outputs)' : ''}`);
  const env = {
    DLKIT_RUNS: path.join(tmp, 'runs'),
    ...(process.env.DLKIT_DATA ? { DLKIT_DATA: path.resolve(process.env.DLKIT_DATA) } : {}),
  };
  if (o.full) delete process.env.DLKIT_QUICK; else env.DLKIT_QUICK = '1';
  const lab = await phase('start JupyterLab', () => startLab(tmp, dir, env));
  let context;
  try {
    context = await phase('start Chromium', () => launch(playwright, path.join(tmp, `chromium-${name}`)));
    const page = context.pages()[0] || await context.newPage();
    await phase('open the notebook and start its kernel', async () => {
      await page.goto(`${lab.url}/lab/tree/${encodeURIComponent(name)}?token=${lab.token}`, { timeout: 120_000 });
      await page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell').first().waitFor({ timeout: 120_000 });
      await chooseKernel(page, o.kernel);
      await page.waitForFunction(
        () => document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') === 'idle',
        null, { timeout: 300_000 },
      );
    });
    const run = await phase('Run All Cells (Run menu) until the kernel is idle', async () => {
      await clickMenu(page, 'Run', /^Run All Cells$/);
      return waitForRunAll(page, o, codeCells);
    });
    const verdict = judge(o, run, codeCells, expected);
    log(`${name}: ${verdict.charts} charts, ${verdict.tables} tables rendered; at most ${run.maxProgress.lines} progress line(s) in one output area; `
      + `progress seen while running in ${run.livePolls} of ${run.polls} looks`);
    const shot = o.screenshot || path.join(REPO, 'runs', 'lab_check', `${path.parse(name).name}.png`);
    await phase('screenshot', () => screenshot(page, shot));
    return verdict.problems;
  } finally {
    if (context) await context.close().catch(() => {});
    await phase('stop the kernel and JupyterLab', () => stopLab(lab));
  }
}

// ---------------------------------------------------------------------------------------------
// --html: an exported page, offline

async function checkHtml(playwright, o, tmp) {
  const file = path.resolve(o.html);
  if (!fs.existsSync(file)) throw new SetupError(`no such file: ${file}`);
  let expected = { charts: o.charts ?? 0, tables: o.tables ?? 0 };
  const nbPath = o.expectFrom || file.replace(/\.html?$/, '.ipynb');
  if ((o.charts === null || o.tables === null) && fs.existsSync(nbPath)) {
    const saved = savedCounts(JSON.parse(fs.readFileSync(nbPath, 'utf8')));
    expected = { charts: o.charts ?? saved.charts, tables: o.tables ?? saved.tables };
    log(`expecting ≥ ${expected.charts} charts and ≥ ${expected.tables} tables (saved outputs of ${nbPath})`);
  } else if (o.expectFrom) {
    throw new SetupError(`no such notebook: ${o.expectFrom}`);
  }
  const context = await phase('start Chromium', () => launch(playwright, path.join(tmp, 'chromium-html')));
  const problems = [];
  try {
    const blocked = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
      blocked.push(url);
      return route.abort();
    });
    const page = context.pages()[0] || await context.newPage();
    const found = await phase('open the page offline', async () => {
      await page.goto('file://' + file, { waitUntil: 'load' });
      await sleep(500);
      return page.evaluate(() => {
        const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
        let charts = 0, drawn = 0, tables = 0;
        for (const o of outs) {
          tables += o.querySelectorAll('table').length;
          const imgs = [...o.querySelectorAll('img')];
          const svgs = [...o.querySelectorAll('svg')].filter((s) => !s.parentElement.closest('svg'));
          if (o.classList.contains('jp-RenderedSVG') || o.classList.contains('jp-RenderedImage')) {
            charts += 1;
            if (imgs.some((i) => i.complete && i.naturalWidth > 0) || svgs.some((s) => s.getBoundingClientRect().width > 0)) drawn += 1;
          }
        }
        const external = [...document.querySelectorAll('[src], link[href]')]
          .map((e) => e.getAttribute('src') || e.getAttribute('href'))
          .filter((u) => u && !u.startsWith('data:') && !u.startsWith('#'));
        return { charts, drawn, tables, external };
      });
    });
    log(`${path.basename(file)}: ${found.charts} charts (${found.drawn} drawn), ${found.tables} tables`);
    if (found.charts < expected.charts) problems.push(`${found.charts} charts in the page, expected at least ${expected.charts}`);
    if (found.drawn < found.charts) problems.push(`${found.charts - found.drawn} of ${found.charts} charts did not draw (broken image)`);
    if (found.tables < expected.tables) problems.push(`${found.tables} tables in the page, expected at least ${expected.tables}`);
    if (found.external.length) problems.push(`the page loads ${found.external.length} resource(s) from outside itself: ${found.external.slice(0, 5).join(', ')}`);
    if (blocked.length) problems.push(`the page tried to reach the network: ${blocked.slice(0, 5).join(', ')}`);
    const shot = o.screenshot || file.replace(/\.html?$/, '') + '.png';
    await phase('screenshot', async () => {
      fs.mkdirSync(path.dirname(path.resolve(shot)), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true });
      log(`screenshot: ${shot}`);
    });
  } finally {
    await context.close().catch(() => {});
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// --self-test: the checker must pass a good notebook and catch each fault in bad ones

function pyNotebook(cells) {
  return {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' } },
    cells: cells.map(([source, outputs = []]) => ({ cell_type: 'code', metadata: {}, execution_count: null, source, outputs })),
  };
}

async function selfTest(playwright, o, tmp) {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect width="120" height="60" fill="teal"/></svg>';
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR4nGM4IScHRwzEcQCxYxBBO0tjggAAAABJRU5ErkJggg==';
  const saved = [
    { output_type: 'display_data', metadata: {}, data: { 'image/svg+xml': svg } },
    { output_type: 'display_data', metadata: {}, data: { 'text/html': '<table><tr><td>1</td></tr></table>' } },
  ];
  const good = pyNotebook([
    ['import sys, time\nfor i in range(30):\n    print(f"\\repoch 1/1 step {i + 1}/30 · {1000 + i} samples/s", end="", flush=True)\n    time.sleep(0.1)\nprint("\\repoch 1/1 done" + " " * 40)'],
    [`from IPython.display import SVG, HTML, Image, display\ndisplay(SVG(${JSON.stringify(svg)}))`, [saved[0]]],
    [`display(HTML("<table><tr><td>1</td></tr></table>"))`, [saved[1]]],
    [`import base64\ndisplay(Image(data=base64.b64decode("${png}")))`],
  ]);
  const bad = pyNotebook([
    ['for i in range(30):\n    print(f"step {i + 1}/30 · {1000 + i} samples/s")'],
    ['import sys\nprint("something went wrong", file=sys.stderr)'],
    ['1 / 0'],
    [`print("never runs: Run All stops at the error")`, [saved[0], saved[1]]],
  ]);
  const dir = path.join(tmp, 'selftest', 'notebooks');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'good.ipynb'), JSON.stringify(good));
  fs.writeFileSync(path.join(dir, 'bad.ipynb'), JSON.stringify(bad));
  const opts = { ...o, kernel: 'Python 3 (ipykernel)', timeout: 120 };
  const failures = [];
  const goodProblems = await checkNotebook(playwright, { ...opts, expectLive: true, screenshot: path.join(tmp, 'good.png') },
    path.join(tmp, 'good-run'), path.join(dir, 'good.ipynb'));
  if (goodProblems.length) failures.push(`the good notebook failed: ${goodProblems.join('; ')}`);
  const badProblems = await checkNotebook(playwright, { ...opts, screenshot: path.join(tmp, 'bad.png') },
    path.join(tmp, 'bad-run'), path.join(dir, 'bad.ipynb'));
  const want = {
    'progress printed as new lines': /showed 30 progress lines at once/,
    'stderr output': /cell 1 shows an error or stderr output: something went wrong/,
    'an exception': /cell 2 shows an error or stderr output: .*ZeroDivisionError/,
    'a cell Run All never reached': /cell 3 did not run/,
    'missing charts': /0 charts rendered, expected at least 1/,
    'missing tables': /0 tables rendered, expected at least 1/,
  };
  for (const [what, re] of Object.entries(want)) {
    if (!badProblems.some((p) => re.test(p))) failures.push(`the bad notebook's ${what} went unnoticed`);
  }
  log(`self-test: the bad notebook was refused for: ${badProblems.length ? badProblems.join(' ;; ') : 'nothing'}`);
  const dies = pyNotebook([['import os\nos._exit(1)'], ['print("after the crash")']]);
  fs.writeFileSync(path.join(dir, 'dies.ipynb'), JSON.stringify(dies));
  const diesProblems = await checkNotebook(playwright, { ...opts, screenshot: path.join(tmp, 'dies.png') },
    path.join(tmp, 'dies-run'), path.join(dir, 'dies.ipynb'));
  if (!diesProblems.some((p) => /the kernel died/.test(p)) || !diesProblems.some((p) => /cell 1 did not run/.test(p))) {
    failures.push(`a kernel that died went unnoticed: ${diesProblems.join('; ') || 'no problem reported'}`);
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const playwright = loadPlaywright();
  chromiumPath();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lab_check-'));
  for (const sub of ['good-run', 'bad-run', 'dies-run']) fs.mkdirSync(path.join(tmp, sub));
  let problems;
  try {
    if (o.selfTest) problems = await selfTest(playwright, o, tmp);
    else if (o.html) problems = await checkHtml(playwright, o, tmp);
    else {
      if (!fs.existsSync(o.notebook)) throw new SetupError(`no such notebook: ${o.notebook}`);
      problems = await checkNotebook(playwright, o, tmp, o.notebook);
    }
  } finally {
    if (o.keep) log(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
  log(`phases: ${phases.map(([n, s]) => `${n} ${s.toFixed(1)} s`).join(' · ')} · total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (problems.length) {
    for (const p of problems) console.error(`lab_check: FAILED: ${p}`);
    return 1;
  }
  log('passed');
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`lab_check: ${e instanceof SetupError ? '' : 'error: '}${e instanceof SetupError ? e.message : (e.stack || e)}`);
  process.exit(2);
});
