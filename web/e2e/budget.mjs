#!/usr/bin/env node
// The shell's initial JavaScript budget: the entry chunk of web/dist/index.html plus every chunk
// it imports statically (what the browser must fetch before the first page renders), gzipped,
// must stay within 300 KB (300,000 bytes). Lazy chunks (pages, the canvas) are listed but not
// counted. Run after `npm run build`: `node e2e/budget.mjs` (from web/). Exits 1 over budget.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(WEB, "dist");
const BUDGET = Number(process.env.CFP_JS_BUDGET_BYTES ?? 300_000);

const html = readFileSync(join(DIST, "index.html"), "utf8");
const attr = (tag, name) => new RegExp(`${name}="([^"]+)"`).exec(tag)?.[1] ?? null;
const local = (url) => url.replace(/^\//, "");

const entries = [];
const styles = [];
for (const [tag] of html.matchAll(/<(script|link)\b[^>]*>/g)) {
  if (tag.startsWith("<script") && attr(tag, "type") === "module" && attr(tag, "src")) {
    entries.push(local(attr(tag, "src")));
  } else if (tag.startsWith("<link") && attr(tag, "rel") === "modulepreload") {
    entries.push(local(attr(tag, "href")));
  } else if (tag.startsWith("<link") && attr(tag, "rel") === "stylesheet") {
    styles.push(local(attr(tag, "href")));
  }
}
if (!entries.length) {
  console.error(`budget: no module script in ${DIST}/index.html: run \`npm run build\``);
  process.exit(1);
}

// Static imports and re-exports of a chunk (`import{a}from"./x.js"`, `import"./x.js"`,
// `export*from"./x.js"`), not dynamic ones (`import("./x.js")`).
const STATIC = /(?:^|[^\w$.])(?:import|export)(?!\s*\()\s*(?:[\w$*{}\s,]*?\s*from\s*)?["'](\.{1,2}\/[^"']+\.js)["']/g;

const initial = new Set();
const queue = [...entries];
while (queue.length) {
  const file = queue.shift();
  if (initial.has(file)) continue;
  initial.add(file);
  const code = readFileSync(join(DIST, file), "utf8");
  for (const found of code.matchAll(STATIC)) {
    queue.push(join(dirname(file), found[1]).replace(/\\/g, "/"));
  }
}

const size = (file) => {
  const bytes = readFileSync(join(DIST, file));
  return { file, raw: bytes.length, gzip: gzipSync(bytes).length };
};
const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
const row = (s) => console.log(`  ${s.file.padEnd(44)} ${kb(s.raw).padStart(10)} ${kb(s.gzip).padStart(10)}`);

const counted = [...initial].map(size);
const css = styles.map(size);
const lazy = readdirSync(join(DIST, "assets"))
  .map((f) => `assets/${f}`)
  .filter((f) => f.endsWith(".js") && !initial.has(f))
  .map(size)
  .sort((a, b) => b.gzip - a.gzip);

const total = counted.reduce((n, s) => n + s.gzip, 0);
console.log(`  ${"initial JavaScript (counted)".padEnd(44)} ${"raw".padStart(10)} ${"gzip".padStart(10)}`);
counted.forEach(row);
console.log(`  ${"total".padEnd(44)} ${kb(counted.reduce((n, s) => n + s.raw, 0)).padStart(10)} ${kb(total).padStart(10)}`);
if (css.length) {
  console.log("  initial CSS (not counted)");
  css.forEach(row);
}
console.log(`  lazy chunks (not counted): ${lazy.length}, ${kb(lazy.reduce((n, s) => n + s.gzip, 0))} gzip in all; largest:`);
lazy.slice(0, 5).forEach(row);

if (total > BUDGET) {
  console.error(`budget: the shell's initial JavaScript is ${kb(total)} gzipped, over the ${kb(BUDGET)} budget`);
  process.exit(1);
}
console.log(`budget: ${kb(total)} gzipped of ${kb(BUDGET)}: ok`);
