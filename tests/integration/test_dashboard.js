// Drives the dashboard (GET /) in Debian's headless Chromium with
// playwright-core: waits until the page has polled the daemon at least
// `polls` times and, when DONE_FILE is given, until that file exists (the
// test's traffic has ended) and two more polls have run; then prints what it
// shows as one JSON line and saves a screenshot.
// Usage: node test_dashboard.js URL SCREENSHOT POLLS [DONE_FILE]
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");

async function main() {
  const [url, shot, polls, doneFile] = process.argv.slice(2);
  const { chromium } = require(path.join(process.env.RWD_SOURCE_ROOT || path.join(__dirname, "..", ".."),
    "node_modules", "playwright-core"));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rwd-chromium-"));
  // a fresh profile per run (playwright wants it as the persistent context's dir)
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.RWD_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    // 404s are expected (/v1/stats when this build has none); script errors are not
    page.on("console", (m) => {
      if (m.type() === "error" && !/Failed to load resource.*404/.test(m.text())) errors.push(m.text());
    });
    const resp = await page.goto(url, { waitUntil: "load" });
    const ctype = resp.headers()["content-type"] || "";
    await page.waitForFunction((n) => Number(document.body.dataset.polls || 0) >= n, Number(polls),
      { timeout: 30000, polling: 100 });
    process.stdout.write("polling\n"); // the test starts its traffic now
    if (doneFile) {
      for (let i = 0; i < 600 && !fs.existsSync(doneFile); i++) await new Promise((r) => setTimeout(r, 100));
      const now = await page.evaluate(() => Number(document.body.dataset.polls));
      await page.waitForFunction((n) => Number(document.body.dataset.polls) >= n, now + 2,
        { timeout: 30000, polling: 100 });
      // The daemon counts a request when libmicrohttpd reports it complete,
      // which can be just after the client read its reply: wait for a poll
      // interval with no new request (rps 0) so the page's numbers are final.
      await page.waitForFunction(() => document.getElementById("rps").textContent.trim() === "0.0",
        null, { timeout: 30000, polling: 100 });
    }
    const shown = await page.evaluate(() => {
      const t = (id) => document.getElementById(id).textContent;
      const models = [...document.querySelectorAll("#models tbody tr")].map((tr) => ({
        name: tr.dataset.model,
        state: tr.querySelector(".st").dataset.state,
        kind: tr.querySelector(".kind").textContent,
        dims: tr.querySelector(".dims").textContent,
      }));
      const canvasInk = (el) => {
        const c = el.getContext("2d").getImageData(0, 0, el.width, el.height).data;
        let n = 0;
        for (let i = 3; i < c.length; i += 4) if (c[i]) n++;
        return n;
      };
      return {
        requests: t("requests-total"), items: t("items-total"), errors: t("errors-total"),
        queue: t("queue-depth"), rps: t("rps"), p50: t("p50"), p90: t("p90"), p99: t("p99"),
        models, rewardsHidden: document.getElementById("rewards-panel").classList.contains("hidden"),
        rewardCharts: document.querySelectorAll("#dims canvas").length,
        batchInk: canvasInk(document.getElementById("batch-chart")),
        latInk: canvasInk(document.getElementById("lat-chart")),
        batchNote: t("batch-note"), status: t("status"),
        maxRps: Math.max(0, ...window.rewardd.rpsHist.filter(Number.isFinite)),
      };
    });
    await page.screenshot({ path: shot, fullPage: true });
    shown.contentType = ctype;
    shown.pageErrors = errors;
    process.stdout.write(JSON.stringify(shown) + "\n");
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
