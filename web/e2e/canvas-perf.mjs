#!/usr/bin/env node
// Canvas performance: signs in to a running `cfp dev`, opens a flow's canvas in Chromium
// (playwright-core), pans and zooms it for a few seconds — mouse wheel and drags on desktop,
// touch pinches and swipes (Chromium's synthetic gestures) on phone — while the page records the
// time between animation frames, and prints the frame times as JSON.
//
// Meant for the 200-step fixture: `cfp dev --project tests/fixtures/projects/big_flow`, flow `big`.
//
//   CFP_URL=http://127.0.0.1:8080              the server (default: `url` of the credentials)
//   CFP_CREDENTIALS=/path/dev-credentials      what `cfp dev` wrote: email, password (or argv[2])
//   CHROMIUM=/usr/bin/chromium                 the browser binary (default /usr/bin/chromium)
//   FLOW=big                                   the flow to open (default big)
//   PERF_SECONDS=5                             how long to pan and zoom (default 5)
//   PERF_VIEWPORT=desktop|phone                1280×800 with a mouse, or 390×844 by touch
//
// Prints {"flow", "nodes", "edges", "viewport", "frames", "frame_ms": {"p50", "p95", "max", ...},
// "load_ms", ...}; exits 1 (with the reason on stderr) when the canvas does not show the flow or
// did not pan or zoom.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

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
};
const TIMEOUT = 30_000;

function fail(message) {
  throw new Error(message);
}

function settings() {
  const file = process.env.CFP_CREDENTIALS ?? process.argv[2];
  if (!file) fail("give the credentials file: CFP_CREDENTIALS=/path/to/dev-credentials (or as the argument)");
  const credentials = JSON.parse(readFileSync(file, "utf8"));
  const base = (process.env.CFP_URL ?? credentials.url ?? "").replace(/\/+$/, "");
  if (!base) fail("give the server: CFP_URL=http://127.0.0.1:<port>");
  if (!credentials.email || !credentials.password) fail(`${file} has no email and password`);
  const viewport = process.env.PERF_VIEWPORT ?? "desktop";
  if (!(viewport in VIEWPORTS)) fail(`PERF_VIEWPORT is desktop or phone, not ${viewport}`);
  const seconds = Number(process.env.PERF_SECONDS ?? 5);
  if (!(seconds > 0 && seconds <= 120)) fail("PERF_SECONDS is a number of seconds from 1 to 120");
  return {
    base,
    credentials,
    chromium: process.env.CHROMIUM || "/usr/bin/chromium",
    flow: process.env.FLOW ?? "big",
    viewport,
    seconds,
  };
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index];
}

const round = (n) => (n === null ? null : Math.round(n * 100) / 100);

/** p50/p95/p99/max/mean of frame intervals, in ms. */
function summary(frames) {
  const sorted = [...frames].sort((a, b) => a - b);
  const total = frames.reduce((sum, f) => sum + f, 0);
  return {
    p50: round(quantile(sorted, 0.5)),
    p95: round(quantile(sorted, 0.95)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? null),
    mean: round(frames.length ? total / frames.length : null),
  };
}

/** The canvas's transform: `translate(x, y) scale(k)` of React Flow's viewport element. */
async function transform(page) {
  return page.evaluate(() => {
    const style = document.querySelector(".react-flow__viewport")?.style.transform ?? "";
    const numbers = style.match(/-?[\d.]+(e-?\d+)?/g)?.map(Number) ?? [];
    return { x: numbers[0] ?? 0, y: numbers[1] ?? 0, zoom: numbers[2] ?? 1 };
  });
}

/** A point of the canvas's empty pane (not a node, edge or control) where a drag pans. */
async function emptyPoint(page) {
  return page.evaluate(() => {
    const pane = document.querySelector(".react-flow")?.getBoundingClientRect();
    if (!pane) return null;
    for (let fy = 0.5; fy < 0.95; fy += 0.04) {
      for (const fx of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.15]) {
        for (const sy of [1, -1]) {
          const x = pane.left + pane.width * fx;
          const y = pane.top + pane.height * (0.5 + sy * (fy - 0.5));
          const hit = document.elementFromPoint(x, y);
          if (hit?.classList.contains("react-flow__pane")) return { x, y };
        }
      }
    }
    return { x: pane.left + pane.width / 2, y: pane.top + pane.height / 2 };
  });
}

async function signIn(page, base, credentials) {
  await page.goto(`${base}/`);
  await page.getByLabel("Email").waitFor({ timeout: TIMEOUT });
  await page.getByLabel("Email").fill(credentials.email);
  await page.getByLabel("Password").fill(credentials.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Pages", includeHidden: true }).waitFor({ state: "attached" });
}

/** Opens the flow's canvas in the credentials' tenant, project and environment (the workbench
 * keeps the place it works in under `cfp.place`); how long until every node and edge was drawn. */
async function openCanvas(page, base, flow, credentials) {
  const { tenant, project, env } = credentials;
  if (tenant && project && env) {
    await page.evaluate((place) => localStorage.setItem("cfp.place", JSON.stringify(place)), {
      tenant,
      project,
      env,
    });
  }
  const started = Date.now();
  await page.goto(`${base}/#/flows/${encodeURIComponent(flow)}`);
  await page.reload(); // a new hash alone does not reload: the stored place is read at start
  const nodes = page.locator('[aria-roledescription="node"]');
  const edges = page.locator('[aria-roledescription="edge"]');
  await nodes.first().waitFor({ timeout: TIMEOUT });
  // all of them: the count stops growing
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = (await nodes.count()) + (await edges.count());
    if (now === last && now > 0) break;
    last = now;
    await page.waitForTimeout(100);
  }
  return { loadMs: Date.now() - started, nodes: await nodes.count(), edges: await edges.count() };
}

async function startRecording(page) {
  await page.evaluate(() => {
    const state = { frames: [], running: true, last: 0 };
    const tick = (t) => {
      if (state.last) state.frames.push(t - state.last);
      state.last = t;
      if (state.running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    window.__cfpFrames = state;
  });
}

async function stopRecording(page) {
  return page.evaluate(() => {
    window.__cfpFrames.running = false;
    return window.__cfpFrames.frames;
  });
}

/** Desktop: wheel zooms in and out around the centre and drags across the empty pane. */
async function mouseRound(page, box, round) {
  const centre = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  await page.mouse.move(centre.x, centre.y);
  for (let i = 0; i < 4; i++) {
    await page.mouse.wheel(0, round % 2 ? 120 : -120);
    await page.waitForTimeout(30);
  }
  const start = await emptyPoint(page);
  const dx = round % 2 ? -180 : 180;
  const dy = round % 3 ? 60 : -60;
  await page.mouse.move(start.x, start.y);
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) {
    await page.mouse.move(start.x + (dx * i) / 12, start.y + (dy * i) / 12);
    await page.waitForTimeout(16);
  }
  await page.mouse.up();
}

/** Phone: two-finger pinches and one-finger swipes, as Chromium synthesizes touch gestures. */
async function touchRound(cdp, page, box, round) {
  const centre = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  await cdp.send("Input.synthesizePinchGesture", {
    x: Math.round(centre.x),
    y: Math.round(centre.y),
    scaleFactor: round % 2 ? 0.7 : 1.4,
    relativeSpeed: 600,
    gestureSourceType: "touch",
  });
  const start = await emptyPoint(page);
  await cdp.send("Input.synthesizeScrollGesture", {
    x: Math.round(start.x),
    y: Math.round(start.y),
    xDistance: round % 2 ? -120 : 120,
    yDistance: round % 3 ? 80 : -80,
    speed: 800,
    gestureSourceType: "touch",
    preventFling: true,
  });
}

async function main() {
  const s = settings();
  const profile = mkdtempSync(join(tmpdir(), "cfp-canvas-perf-"));
  let context = null;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: s.chromium,
      headless: true,
      args: CHROMIUM_ARGS, // Playwright adds --user-data-dir=<profile>: a fresh one per run
      ...VIEWPORTS[s.viewport],
      timeout: 60_000,
    });
    context.setDefaultTimeout(TIMEOUT);
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on("pageerror", (error) => errors.push(String(error)));

    await signIn(page, s.base, s.credentials);
    const opened = await openCanvas(page, s.base, s.flow, s.credentials);
    if (!opened.nodes) fail(`the canvas of flow ${s.flow} shows no node`);
    const box = await page.locator(".react-flow").boundingBox();
    if (!box) fail("no canvas on the page");
    await page.waitForTimeout(500); // let the first paint and fit settle

    const before = await transform(page);
    const seen = { zoom: new Set([before.zoom]), pan: new Set([`${before.x},${before.y}`]) };
    const cdp = s.viewport === "phone" ? await context.newCDPSession(page) : null;
    await startRecording(page);
    const started = Date.now();
    let rounds = 0;
    while (Date.now() - started < s.seconds * 1000) {
      if (cdp) await touchRound(cdp, page, box, rounds);
      else await mouseRound(page, box, rounds);
      const now = await transform(page);
      seen.zoom.add(now.zoom);
      seen.pan.add(`${now.x},${now.y}`);
      rounds++;
    }
    const elapsed = Date.now() - started;
    const frames = await stopRecording(page);
    if (seen.zoom.size < 2) fail(`the canvas did not zoom (${s.viewport})`);
    if (seen.pan.size < 3) fail(`the canvas did not pan (${s.viewport})`);

    const stats = summary(frames);
    const result = {
      flow: s.flow,
      viewport: s.viewport,
      input: cdp ? "touch (pinch + swipe)" : "mouse (wheel + drag)",
      nodes: opened.nodes,
      edges: opened.edges,
      load_ms: opened.loadMs,
      duration_ms: elapsed,
      rounds,
      frames: frames.length,
      fps: round((frames.length * 1000) / elapsed),
      frame_ms: stats,
      long_frames_over_50ms: frames.filter((f) => f > 50).length,
      zoom_levels_seen: seen.zoom.size,
      browser: await page.evaluate(() => navigator.userAgent.match(/Chrom(e|ium)\/[\d.]+/)?.[0] ?? navigator.userAgent),
      page_errors: errors,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`canvas-perf: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
