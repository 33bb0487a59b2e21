// Shared by the browser checks (play.mjs, abr.mjs, latency.mjs): Debian's
// Chromium launched headless through playwright-core with a fresh profile,
// page errors collected, and a deadline that prints the result and exits if
// a check hangs.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

// Chromium path: `--chromium`, else `CHROMIUM_PATH`, else Debian's.
export const DEFAULT_CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// A fresh profile directory named after the script (`prefix`).
export function freshProfile(prefix) {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

export function removeProfile(profile) {
  rmSync(profile, { recursive: true, force: true });
}

// Launches Chromium on `profile`; `extra` goes to launchPersistentContext
// (e.g. `ignoreHTTPSErrors`).
export function launch(profile, executablePath, extra = {}) {
  return chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 800 },
    ...extra,
  });
}

// Records the page's console errors (with their source) and uncaught
// errors, each prefixed with `label`.
export function collectErrors(page, errors, label = "") {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const where = msg.location() && msg.location().url;
    errors.push(label + (where ? `${msg.text()} [${where}]` : msg.text()));
  });
  page.on("pageerror", (err) => errors.push(`${label}pageerror: ${err.message}`));
}

// Whatever happens inside, the script never outlives `seconds`: the result
// so far is printed (as one JSON line) and the process exits with 1.
export function deadline(name, seconds, result, errors, profile, before = () => {}) {
  const t = setTimeout(() => {
    errors.push(`${name}: overall deadline exceeded`);
    before();
    console.log(JSON.stringify(result));
    removeProfile(profile);
    process.exit(1);
  }, seconds * 1000);
  t.unref();
  return t;
}
