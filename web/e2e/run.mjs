#!/usr/bin/env node
// End to end: a real `cfp dev` serving examples/orders (a child process with a temporary data
// dir, killed at the end whatever happens), driven in Debian's Chromium through playwright-core.
// At desktop (1280×800) and phone (390×844, touch) it signs in (and reloads: the refresh cookie
// keeps the session), opens a flow from the menu and sees its nodes and edges, opens a node's
// panel, calls POST /orders from the endpoint tester, sees the trace, watches a log line arrive
// live over the websocket, replays a dead letter and verifies the audit chain from the audit
// page. The dead letter is the example's own: the tester's order is over the review limit with
// `"fail": true`, which AuditFlaggedOrder rejects on every attempt. Every page of the registry
// (web/src/pages/registry.ts) also loads at phone and tablet (820×1180) size. On every page and
// viewport: no horizontal page overflow, no serious or critical axe-core violation, no uncaught
// script error or CSP violation, and a screenshot in web/test-results/<viewport>/<page>.png.
//
//   node e2e/run.mjs                 (from web/, after `npm run build`)
//   CHROMIUM=/path/to/chrome         another browser binary (default /usr/bin/chromium)
//   E2E_VIEWPORTS=desktop,phone      only these viewports (default desktop,phone,tablet)
//   E2E_SWEEP=phone,tablet           the viewports that load every page (default phone,tablet)
//   E2E_KEEP=1                       keep the temporary data dir and browser profiles
//
// Exits 1 naming every step that failed; each failure is printed with its reason.
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = resolve(WEB, "..");
const CFP = process.env.CFP_BIN ?? join(ROOT, ".venv", "bin", "cfp");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUT = join(WEB, "test-results");
const DIST = join(WEB, "dist");
const AXE = join(WEB, "node_modules", "axe-core", "axe.min.js");
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 15_000);
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
  tablet: { viewport: { width: 820, height: 1180 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
};
const list = (value, fallback) => (value ?? fallback).split(",").map((v) => v.trim()).filter(Boolean);
const RUN = list(process.env.E2E_VIEWPORTS, "desktop,phone,tablet");
const SWEEP = list(process.env.E2E_SWEEP, "phone,tablet");
const SCENARIO = ["desktop", "phone"];

// ---------------------------------------------------------------------------------------------
// Results

const results = []; // {viewport, step, ok, ms, error}

function report(viewport, step, ok, ms, error) {
  results.push({ viewport, step, ok, ms, error });
  const mark = ok ? "ok  " : "FAIL";
  console.log(`${mark} ${viewport.padEnd(8)} ${step} (${(ms / 1000).toFixed(1)} s)`);
  if (!ok) console.log(indent(error));
}

function indent(text) {
  return String(text)
    .split("\n")
    .map((line) => `       ${line}`)
    .join("\n");
}

/** Runs one step, recording it; returns its value, or undefined when it failed (with a
 *  screenshot of `page` as it was then, in test-results/<viewport>/failed-<step>.png). */
async function step(viewport, name, work, page = null) {
  const start = Date.now();
  try {
    const value = await work();
    report(viewport, name, true, Date.now() - start);
    return value;
  } catch (error) {
    let message = describe(error);
    if (page) {
      const file = join(OUT, viewport, `failed-${fileName(name)}.png`);
      mkdirSync(dirname(file), { recursive: true });
      await page.screenshot({ path: file, fullPage: true }).then(
        () => (message += `\n(screenshot: ${file.slice(WEB.length + 1)})`),
        () => {},
      );
    }
    report(viewport, name, false, Date.now() - start, message);
    return undefined;
  }
}

function describe(error) {
  if (!(error instanceof Error)) return String(error);
  // Playwright's messages carry a call log; its first lines say what was awaited.
  return error.message.split("\n").slice(0, 12).join("\n");
}

class Check extends Error {}

function expect(condition, message) {
  if (!condition) throw new Check(message);
}

// ---------------------------------------------------------------------------------------------
// The server: a real `cfp dev`, a child process killed at the end whatever happens

const scratch = mkdtempSync(join(tmpdir(), "cfp-e2e-"));
const dataDir = join(scratch, "data"); // the audit anchors go beside it, in scratch too
let server = null;
let BASE = ""; // http://127.0.0.1:<port> once the server is up
let serverLog = "";

function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

async function startServer() {
  expect(existsSync(CFP), `${CFP} is missing: run \`make install\` first`);
  expect(existsSync(join(DIST, "index.html")), `${DIST}/index.html is missing: run \`npm run build\``);
  // A copy of the build: a rebuild of web/dist during the run cannot pull the lazy chunks away.
  const build = join(scratch, "dist");
  cpSync(DIST, build, { recursive: true });
  const port = await freePort();
  server = spawn(
    CFP,
    ["dev", "--project", join(ROOT, "examples", "orders"), "--port", String(port), "--data-dir", dataDir],
    {
      cwd: ROOT,
      detached: true, // its own process group: killed whole at the end
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        CFP_WEB_DIR: build,
        CFP_RETRY_BASE_SECONDS: "0.1", // the dead letter comes after its retry within a second
      },
    },
  );
  const keep = (chunk) => {
    serverLog += chunk.toString();
    if (serverLog.length > 2_000_000) serverLog = serverLog.slice(-1_000_000);
  };
  server.stdout.on("data", keep);
  server.stderr.on("data", keep);
  const base = `http://127.0.0.1:${port}`;
  BASE = base;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (server.exitCode !== null) {
      throw new Check(`cfp dev exited (${server.exitCode}) before it was ready:\n${serverLog.slice(-3000)}`);
    }
    try {
      const answer = await fetch(`${base}/ready`);
      if (answer.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Check(`cfp dev not ready after 90 s:\n${serverLog.slice(-3000)}`);
    await sleep(250);
  }
  const credentials = JSON.parse(readFileSync(join(dataDir, "dev-credentials"), "utf8"));
  return { base, ...credentials };
}

function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  try {
    process.kill(-server.pid, "SIGTERM");
  } catch {
    // already gone
  }
}

async function stopServerAndWait() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((done) => server.once("exit", done));
  stopServer();
  const late = setTimeout(() => {
    try {
      process.kill(-server.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }, 10_000);
  await exited;
  clearTimeout(late);
}

process.on("exit", () => {
  stopServer();
  if (!process.env.E2E_KEEP) rmSync(scratch, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => process.exit(130)); // the exit handler stops the server
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// ---------------------------------------------------------------------------------------------
// The API, straight (with the dev API key): set-up and cross-checks of what the pages did

function makeApi(env) {
  const runtime = `/v1/projects/${env.project}/envs/${env.env}`;
  async function call(path, { method, body } = {}) {
    const response = await fetch(`${env.base}${path}`, {
      method: method ?? (body === undefined ? "GET" : "POST"),
      headers: {
        authorization: `Bearer ${env.api_key}`,
        "x-tenant-id": env.tenant,
        accept: "application/json",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Check(`${method ?? "GET"} ${path}: ${response.status} ${text.slice(0, 400)}`);
    return data;
  }
  return { call, runtime, R: (path) => `${runtime}${path}` };
}

/** An order (over the review limit with `fail`: it ends as a dead letter of AuditFlaggedOrder). */
function order(customerId, { fail = false } = {}) {
  return fail
    ? { customerId, items: [{ sku: "sofa", quantity: 1, unitPrice: 1500 }], fail: true }
    : { customerId, items: [{ sku: "tea", quantity: 2, unitPrice: 4.5 }] };
}

async function waitFor(what, probe, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Check(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// The pages: the registry is read from its source so a new page is covered without edits here

function registryPages() {
  const source = readFileSync(join(WEB, "src", "pages", "registry.ts"), "utf8");
  const pages = [];
  for (const found of source.matchAll(/page\(\s*"([^"]+)",\s*"([^"]+)"/g)) {
    pages.push({ path: found[1], title: found[2] });
  }
  expect(pages.length > 0, "no page found in web/src/pages/registry.ts");
  return pages;
}

function fileName(path) {
  return path.replace(/^\//, "").replace(/[^A-Za-z0-9_.-]+/g, "-") || "home";
}

/** A concrete route for a pattern (`/flows/:flow` → `/flows/orders`); a missing value fails. */
function concrete(pattern, params) {
  return pattern.replace(/:([A-Za-z_]+)/g, (_, name) => {
    if (!params[name]) throw new Check(`no concrete value for :${name} of ${pattern}: add one to run.mjs`);
    return encodeURIComponent(params[name]);
  });
}

// ---------------------------------------------------------------------------------------------
// Per-page checks: overflow, axe-core, script errors, screenshot

const axeSource = readFileSync(AXE, "utf8");

function watch(page, frames) {
  const problems = [];
  page.on("websocket", (ws) => {
    const keep = (sent) => (frame) => {
      frames.push({ sent, payload: String(frame.payload) });
      if (frames.length > 5000) frames.splice(0, 1000);
    };
    ws.on("framesent", keep(true));
    ws.on("framereceived", keep(false));
  });
  page.on("pageerror", (error) => problems.push(`uncaught error: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(text)) {
      problems.push(`CSP: ${text}`);
    }
  });
  return problems;
}

/** Waits until the page has rendered its heading and finished loading its data. */
async function settle(page) {
  // visible: while a lazy page loads, React keeps the previous one in the DOM, hidden
  await page.locator("h1:visible").first().waitFor({ timeout: TIMEOUT });
  const loading = page.getByRole("status").filter({ hasText: /^Loading…$/ });
  await page
    .waitForFunction(
      () => ![...document.querySelectorAll('[role="status"]')].some((e) => e.textContent === "Loading…"),
      null,
      { timeout: TIMEOUT },
    )
    .catch(async () => {
      throw new Check(`still "Loading…" after ${TIMEOUT / 1000} s (${await loading.count()} loaders)`);
    });
  await page.waitForLoadState("networkidle", { timeout: 5_000 }).catch(() => {});
}

/** Overflow, axe-core and script errors of the page as it is; the screenshot; throws all problems. */
async function checkPage(page, viewport, name, errors, { strict = true, problems: found = [], fullPage = true } = {}) {
  const problems = [...found, ...errors.splice(0)];
  const width = await page.evaluate(() => {
    const root = document.getElementById("root");
    return {
      inner: window.innerWidth,
      document: document.documentElement.scrollWidth,
      body: document.body.scrollWidth,
      root: root ? root.scrollWidth : 0,
    };
  });
  // The document's width is the rule (scrollWidth ≤ innerWidth). On a phone or tablet
  // (isMobile) Chromium widens the layout viewport to fit what overflows, so innerWidth itself
  // must also stay the viewport's width. Body and #root too: `overflow-x: hidden` on them would
  // clip (hide) what overflows instead of letting the document grow.
  const limit = Math.min(width.inner, page.viewportSize()?.width ?? width.inner);
  if (width.inner > limit) {
    problems.push(`horizontal overflow: the layout viewport grew to ${width.inner} px on a ${limit} px screen`);
  }
  for (const what of ["document", "body", "root"]) {
    if (width[what] > limit) {
      const wide = await widest(page, limit);
      problems.push(
        `horizontal overflow: ${what} scrollWidth ${width[what]} > innerWidth ${limit}` +
          (wide.length ? `; widest elements: ${wide.join(", ")}` : ""),
      );
      break;
    }
  }
  if (VIEWPORTS[viewport].hasTouch) {
    const small = await smallTargets(page);
    if (small.length) {
      problems.push(`${small.length} tap target(s) under 40 px: ${small.slice(0, 6).join("; ")}`);
    }
  }
  const violations = await axe(page);
  for (const v of violations) {
    const where = v.nodes
      .slice(0, 4)
      .map((n) => n.target.join(" "))
      .join(" | ");
    problems.push(`axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.length}×: ${where})`);
  }
  if (strict) {
    const alerts = await page.getByRole("alert").allInnerTexts();
    for (const text of alerts.filter((t) => t.trim())) problems.push(`error shown: ${text.trim().slice(0, 300)}`);
  }
  const dir = join(OUT, viewport);
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage });
  if (problems.length) throw new Check(problems.join("\n"));
}

/** The elements wider than the viewport, deepest first (what to fix for an overflow). */
async function widest(page, limit) {
  return page.evaluate((inner) => {
    const found = [];
    for (const el of document.querySelectorAll("body *")) {
      const box = el.getBoundingClientRect();
      if (box.right > inner + 0.5 && box.width > 0) {
        const cls = typeof el.className === "string" && el.className ? `.${el.className.split(" ")[0]}` : "";
        found.push(`${el.tagName.toLowerCase()}${cls} (right ${Math.round(box.right)})`);
      }
    }
    return found.slice(-5);
  }, limit);
}

/** Controls smaller than 40 × 40 px (the tap target); inline links in running text, and
 *  a check box or radio whose label is the target, are measured as WCAG does. A page with one fails. */
async function smallTargets(page) {
  return page.evaluate(() => {
    const found = [];
    const selector =
      'button, select, textarea, a[href], summary, [role="button"], [role="tab"], [role="switch"], input:not([type="hidden"])';
    for (const el of document.querySelectorAll(selector)) {
      const style = getComputedStyle(el);
      if (style.visibility === "hidden" || style.display === "none") continue;
      if (el.closest('[aria-hidden="true"], .react-flow__node')) continue; // nodes: pan/zoom targets
      let box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      if (el.tagName === "A" && style.display === "inline") {
        const text = (el.parentElement?.textContent ?? "").trim();
        if (text.length > (el.textContent ?? "").trim().length + 2) continue; // a link in a sentence
      }
      if (el.tagName === "INPUT" && /^(checkbox|radio)$/.test(el.type)) {
        const label = el.closest("label") ?? (el.id ? document.querySelector(`label[for="${el.id}"]`) : null);
        if (label) box = label.getBoundingClientRect();
      }
      if (Math.min(box.width, box.height) < 39.5) {
        const name = (el.getAttribute("aria-label") ?? el.textContent ?? el.getAttribute("name") ?? "").trim().slice(0, 30);
        found.push(`${el.tagName.toLowerCase()} "${name}" ${Math.round(box.width)}×${Math.round(box.height)}`);
      }
    }
    return found;
  });
}

async function axe(page) {
  // Evaluated over the DevTools protocol, so the page's CSP (script-src 'self') stays on.
  const present = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!present) await page.evaluate(axeSource);
  const outcome = await page.evaluate(async () => {
    const run = await window.axe.run(document, { resultTypes: ["violations"] });
    return run.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.map(String) })),
    }));
  });
  return outcome.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Opens `#route` and checks the page: a heading, no placeholder, no "not allowed", no overflow… */
async function visit(page, viewport, route, name, errors, { title, strict = true } = {}) {
  await page.goto(`${BASE}/#${route}`);
  await settle(page);
  const heading = (await page.locator("h1:visible").first().innerText()).trim();
  const problems = [];
  if (heading === "Not found") problems.push(`${route}: the router found no page ("Not found")`);
  if (await page.getByText(/Your roles here do not include/).count()) {
    problems.push(`${route}: the local admin was refused the page (roles)`);
  }
  if (await page.getByText("This page is being built.").count()) {
    problems.push(`${route}: PENDING, still the placeholder ("This page is being built.")`);
  }
  if (title && !heading) problems.push(`${route}: empty heading (wanted something like "${title}")`);
  await checkPage(page, viewport, name, errors, { problems, strict });
}

// ---------------------------------------------------------------------------------------------
// The browser: one Chromium per viewport, each with a fresh user-data dir in the scratch dir

async function openViewport(viewport) {
  const profile = join(scratch, `profile-${viewport}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    ...VIEWPORTS[viewport],
    timeout: 60_000,
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());
  const frames = []; // every websocket frame the page sent or received: {sent, payload}
  return { context, page, frames, errors: watch(page, frames) };
}

async function signIn(page, viewport, env, errors) {
  await page.goto(`${env.base}/`);
  await page.getByLabel("Email").waitFor({ timeout: TIMEOUT });
  await checkPage(page, viewport, "signin", errors);
  await page.getByLabel("Email").fill(env.email);
  await page.getByLabel("Password").fill(env.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Pages", includeHidden: true }).waitFor({ state: "attached" });
  await page.waitForFunction(() => window.location.hash.startsWith("#/flows"));
  return true;
}

// ---------------------------------------------------------------------------------------------
// The scenario (desktop and phone)

async function scenario(viewport, session, env, api, shared) {
  const { page, errors } = session;
  const tag = `${viewport}-${Date.now().toString(36)}`;
  const sstep = (name, work) => step(viewport, name, work, page);

  const signedIn = await sstep("sign in", () => signIn(page, viewport, env, errors));
  if (signedIn === undefined && !(await page.getByRole("navigation", { name: "Pages", includeHidden: true }).count())) {
    report(viewport, "the rest of the scenario", false, 0, "not signed in: every later step needs a session");
    return;
  }

  await sstep("a reload keeps the session (refresh cookie)", async () => {
    await page.reload();
    await page.getByRole("navigation", { name: "Pages", includeHidden: true }).waitFor({ state: "attached", timeout: TIMEOUT });
    expect((await page.getByLabel("Password").count()) === 0, "the sign-in form came back after a reload");
  });

  await sstep("open a flow: its nodes and edges", async () => {
    const graph = await api.call(api.R("/flows/orders"));
    await page.goto(`${env.base}/#/`);
    const menu = page.getByRole("button", { name: /menu/i });
    if (await menu.isVisible()) {
      // phones: the navigation is behind the menu button
      await menu.click();
      expect((await menu.getAttribute("aria-expanded")) === "true", "the menu button did not open the menu");
    }
    await page.getByRole("navigation", { name: "Pages", includeHidden: true }).getByRole("link", { name: "Flows", exact: true }).click();
    await page.waitForFunction(() => window.location.hash === "#/flows");
    await settle(page);
    await checkPage(page, viewport, "flows", errors);
    await page.getByRole("main").getByRole("link", { name: /orders/i }).first().click();
    await page.waitForFunction(() => window.location.hash.startsWith("#/flows/orders"));
    await settle(page);
    const nodes = page.locator('[aria-roledescription="node"]');
    const edges = page.locator('[aria-roledescription="edge"]');
    const wantNodes = (graph.nodes ?? graph.steps ?? []).length;
    const wantEdges = (graph.edges ?? []).length;
    await waitFor(`${wantNodes} nodes on the canvas`, async () => (await nodes.count()) >= wantNodes, TIMEOUT);
    await waitFor(`${wantEdges} edges on the canvas`, async () => (await edges.count()) >= wantEdges, TIMEOUT);
    for (const name of ["CreateOrder", "PriceOrder", "AuditFlaggedOrder"]) {
      expect((await nodes.filter({ hasText: name }).count()) > 0, `no node named ${name} on the canvas`);
    }
    await checkPage(page, viewport, "flows-orders", errors);
  });

  await sstep("a node opens its panel (a bottom sheet on phones)", async () => {
    const node = page.locator('[aria-roledescription="node"]').filter({ hasText: "PriceOrder" }).first();
    if (VIEWPORTS[viewport].hasTouch) await node.tap();
    else await node.click();
    const panel = page.getByRole("dialog", { name: /PriceOrder/ });
    await panel.waitFor({ timeout: TIMEOUT });
    const box = await panel.boundingBox();
    const width = page.viewportSize().width;
    expect(box && box.x >= 0 && box.x + box.width <= width + 0.5, `the panel (${JSON.stringify(box)}) leaves the ${width} px screen`);
    // the screen as it is (a full-page shot would move the fixed panel)
    await checkPage(page, viewport, "flows-orders-panel", errors, { fullPage: false });
    await panel.getByRole("button", { name: "Close" }).click();
    await panel.waitFor({ state: "hidden", timeout: TIMEOUT });
  });

  const call = await sstep("call an api step from the endpoint tester", async () => {
    await visit(page, viewport, "/tester", "tester", errors, { strict: false });
    const main = page.getByRole("main");
    // the step: a picker (select) labelled Step / Endpoint, or a list of steps to click
    const picker = main.getByRole("combobox", { name: /step|endpoint|route/i }).first();
    if (await picker.count()) {
      const options = await picker.locator("option").allInnerTexts();
      const wanted = options.find((o) => /POST/.test(o) && /\/orders\b/.test(o) && !/:id/.test(o)) ??
        options.find((o) => /CreateOrder/.test(o));
      expect(wanted, `no option for POST /orders (CreateOrder) among: ${options.join(" | ")}`);
      await picker.selectOption({ label: wanted });
    } else {
      await main.getByRole("button", { name: /CreateOrder|POST \/orders/ }).first().click();
    }
    // the raw JSON body (a toggle between the schema form and raw JSON)
    const raw = main.getByRole("checkbox", { name: /raw|json/i }).or(main.getByRole("switch", { name: /raw|json/i }));
    if (await raw.count()) {
      if (!(await raw.first().isChecked())) await raw.first().check();
    } else {
      const tab = main.getByRole("tab", { name: /raw|json/i }).or(main.getByRole("button", { name: /raw json|^json$|^raw$/i }));
      if (await tab.count()) await tab.first().click();
    }
    const body = main.getByRole("textbox", { name: /body|json/i }).last();
    const customer = `e2e-${tag}`;
    await body.fill(JSON.stringify(order(customer, { fail: true }), null, 2));
    const answered = page.waitForResponse(
      (r) => r.url().endsWith("/orders") && r.request().method() === "POST",
      { timeout: TIMEOUT },
    );
    await main.getByRole("button", { name: /^(send|call|invoke|run)/i }).first().click();
    const response = await answered;
    expect(response.status() === 201, `POST /orders answered ${response.status()}: ${await response.text()}`);
    const answer = await response.json();
    await main.getByText("201").first().waitFor({ timeout: TIMEOUT });
    await main.getByText(answer.orderId).first().waitFor({ timeout: TIMEOUT });
    await checkPage(page, viewport, "tester-answered", errors);
    return { ...answer, customer };
  });

  // Without the tester's call the later steps still get a trace and a dead letter to look at.
  const made = call ?? shared.fallback;

  await sstep("see the resulting trace", async () => {
    expect(made, "no order was placed (neither by the tester nor by the set-up)");
    await waitFor("the trace's executions", async () => {
      const trace = await api.call(api.R(`/traces/${made.traceId}`));
      return (trace.executions ?? trace.items ?? []).length >= 3;
    });
    await visit(page, viewport, "/traces", "traces", errors, { strict: false });
    const main = page.getByRole("main");
    const short = made.traceId.slice(0, 8);
    const entry = main.getByRole("link", { name: new RegExp(short) }).or(main.getByRole("button", { name: new RegExp(short) }));
    await waitFor(`trace ${made.traceId} in the list`, async () => (await entry.count()) > 0, TIMEOUT);
    await entry.first().click();
    await page.waitForFunction((id) => window.location.hash.includes(id), made.traceId);
    await settle(page);
    for (const name of ["CreateOrder", "PriceOrder", "AuditFlaggedOrder"]) {
      await main.getByText(name).first().waitFor({ timeout: TIMEOUT });
    }
    await checkPage(page, viewport, "traces-trace", errors);
  });

  await sstep("watch a log line arrive live", async () => {
    const { frames } = session;
    const tails = frames.filter((f) => f.sent && f.payload.includes('"tail"')).length;
    await visit(page, viewport, "/logs", "logs", errors, { strict: false });
    // the page asks for the tail over the websocket; give the server a moment to register it
    await waitFor("the page's tail request on the websocket", async () =>
      frames.filter((f) => f.sent && f.payload.includes('"tail"')).length > tails, TIMEOUT);
    await sleep(500);
    const placed = await api.call("/orders", { body: order(`live-${tag}`) });
    const main = page.getByRole("main");
    await waitFor(
      `a websocket frame with trace ${placed.traceId}`,
      async () => frames.some((f) => !f.sent && f.payload.includes(placed.traceId)),
      TIMEOUT,
    );
    const line = main.getByText(new RegExp(`${placed.orderId}|${placed.traceId.slice(0, 8)}`));
    await waitFor(`the log line of ${placed.orderId} on the page`, async () => (await line.count()) > 0, TIMEOUT);
    await checkPage(page, viewport, "logs-live", errors);
  });

  await sstep("replay a dead letter", async () => {
    expect(made, "no order was placed (neither by the tester nor by the set-up)");
    const letter = await waitFor(`the dead letter of ${made.orderId}`, async () => {
      const page_ = await api.call(api.R("/dead-letters?limit=500"));
      return page_.items.find((d) => JSON.stringify(d.input ?? {}).includes(made.orderId) || d.trace_id === made.traceId);
    });
    const before = await replays(api, letter.id);
    await visit(page, viewport, "/dead-letters", "dead-letters", errors, { strict: false });
    const main = page.getByRole("main");
    const done = main.getByText(/replayed/i);
    const shown = await done.count();
    // the letter's row (its Replay button, or a button that opens it), or a button naming it
    const row = main.getByRole("row").filter({ hasText: new RegExp(`${made.orderId}|${letter.event_id.slice(0, 8)}`) });
    const opener = main.getByRole("button", { name: new RegExp(`${made.orderId}|${letter.event_id.slice(0, 8)}`) });
    await waitFor(`a row or a button for dead letter ${letter.id} (${made.orderId})`, async () =>
      (await row.count()) + (await opener.count()) > 0, TIMEOUT);
    if (await row.count()) {
      const inRow = row.first().getByRole("button", { name: /replay/i });
      if (await inRow.count()) await inRow.first().click();
      else {
        await row.first().getByRole("button").first().click();
        await page.getByRole("button", { name: /^replay( this| one)?$/i }).first().click();
      }
    } else {
      await opener.first().click();
      await page.getByRole("button", { name: /^replay/i }).first().click();
    }
    const confirm = page.getByRole("dialog").getByRole("button", { name: /replay|confirm|yes/i });
    if (await confirm.count()) await confirm.first().click();
    await waitFor("the replay in the audit record", async () => (await replays(api, letter.id)) > before, TIMEOUT);
    await waitFor("the page to say the letter was replayed", async () => (await done.count()) > shown, TIMEOUT);
    await checkPage(page, viewport, "dead-letters-replayed", errors);
  });

  await sstep("verify the audit chain", async () => {
    await visit(page, viewport, "/audit", "audit", errors, { strict: false });
    const main = page.getByRole("main");
    const verdict = main.getByText(/intact|verified/i);
    const shown = await verdict.count();
    const verified = page.waitForResponse((r) => r.url().includes("/v1/audit/verify"), { timeout: TIMEOUT });
    await main.getByRole("button", { name: /^verify/i }).first().click();
    const answer = await (await verified).json();
    expect(answer.ok === true, `the server's verification failed: ${JSON.stringify(answer).slice(0, 300)}`);
    await waitFor("the verdict on the page", async () => (await verdict.count()) > shown, TIMEOUT);
    expect((await main.getByText(/broken/i).count()) === 0, "the page says the chain is broken");
    await checkPage(page, viewport, "audit-verified", errors);
  });
}

async function replays(api, id) {
  const records = await api.call("/v1/audit/records?limit=500");
  return records.items.filter((r) => r.action === "dead_letter.replay" && (r.target?.id === id || JSON.stringify(r).includes(`"${id}"`)))
    .length;
}

// ---------------------------------------------------------------------------------------------
// Every page of the registry

async function sweep(viewport, session, params) {
  const { page, errors } = session;
  for (const { path, title } of registryPages()) {
    let route;
    try {
      route = concrete(path, params);
    } catch (error) {
      report(viewport, `page ${path}`, false, 0, describe(error));
      continue;
    }
    await step(viewport, `page ${route}`, () => visit(page, viewport, route, fileName(route), errors, { title }), page);
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  console.log(`e2e: Chromium ${CHROMIUM}; screenshots in ${OUT}`);
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`make chromium\` (Debian's chromium package)`);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const env = await step("server", "cfp dev starts and is ready", startServer);
  if (!env) return;
  const api = makeApi(env);
  // Set-up through the API: one order that completes, one that ends as a dead letter, so every
  // page has data even when a scenario step fails before making its own.
  const shared = {};
  await step("server", "set-up: an order and a dead letter through the API", async () => {
    const ok = await api.call("/orders", { body: order("e2e-setup") });
    shared.fallback = await api.call("/orders", { body: order("e2e-setup-fail", { fail: true }) });
    shared.trace = ok.traceId;
    await waitFor("the set-up's dead letter", async () => (await api.call(api.R("/dead-letters"))).items.length > 0);
    // more than the signed-in administrator on the management pages: a service account with a
    // long name and a role on the project, so wide rows and others' actions are on screen
    const robot = await api.call("/v1/service-accounts", { body: { name: "e2e reporting robot with a long name" } });
    await api.call("/v1/role-bindings", {
      body: { principal: robot.id, role: "project_viewer", scope: `tenant/${env.tenant}/project/${env.project}` },
    });
  });
  const params = { flow: "orders", trace: shared.trace ?? shared.fallback?.traceId };

  for (const viewport of RUN) {
    if (!VIEWPORTS[viewport]) {
      report(viewport, "viewport", false, 0, `unknown viewport (known: ${Object.keys(VIEWPORTS).join(", ")})`);
      continue;
    }
    if (!SCENARIO.includes(viewport) && !SWEEP.includes(viewport)) continue;
    const session = await step(viewport, "launch Chromium", () => openViewport(viewport));
    if (!session) continue;
    try {
      if (SCENARIO.includes(viewport)) {
        await scenario(viewport, session, env, api, shared);
      } else if (SWEEP.includes(viewport)) {
        await step(viewport, "sign in", () => signIn(session.page, viewport, env, session.errors), session.page);
      }
      if (SWEEP.includes(viewport)) await sweep(viewport, session, params);
    } finally {
      await session.context.close().catch(() => {});
    }
  }
}

const started = Date.now();
try {
  await main();
} catch (error) {
  report("e2e", "harness", false, 0, describe(error));
} finally {
  await stopServerAndWait();
  writeFileSync(join(OUT, "server.log"), serverLog);
  if (!process.env.E2E_KEEP) rmSync(scratch, { recursive: true, force: true });
  else console.log(`kept ${scratch}`);
}

const failed = results.filter((r) => !r.ok);
console.log(
  `\ne2e: ${results.length - failed.length} passed, ${failed.length} failed in ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
if (failed.length) {
  console.log("failed:");
  for (const f of failed) console.log(`  ${f.viewport}: ${f.step}`);
  process.exit(1);
}
