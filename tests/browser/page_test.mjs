// The page of `anomalydino serve`, tested in a real browser: Debian's chromium driven by
// playwright-core (installed by tools/install-deps.sh; no browser is downloaded). The test starts
// the service itself on 127.0.0.1 with the tiny test model, walks through the page as an
// inspection engineer would, compares what the page shows with what the API answers, saves a
// screenshot of every step, and stops the service. Every wait is bounded.
//
//   node tests/browser/page_test.mjs   (env: AD_BIN, AD_TEST_DATA, AD_SAMPLES, AD_SHOTS, CHROMIUM)
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createRequire } from "node:module";

const here = dirname(new URL(import.meta.url).pathname);
const require = createRequire(join(here, "node_modules", "x.js"));
const { chromium } = require("playwright-core");

const BIN = process.env.AD_BIN;
const DATA = process.env.AD_TEST_DATA;
const SAMPLES = process.env.AD_SAMPLES || join(DATA, "..", "..", "samples");
const SHOTS = process.env.AD_SHOTS || join(tmpdir(), "anomalydino-browser-shots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const MODEL = join(DATA, "dinov2", "tiny.safetensors");
const KEY = "browser-test-key-0123456789";
const ADMIN = "browser-admin-key-0123456789";

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; console.log("ok   " + what); }
  else { failed++; console.log("FAIL " + what); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tmp = mkdtempSync(join(tmpdir(), "ad-browser-"));
mkdirSync(SHOTS, { recursive: true });
mkdirSync(join(tmp, "banks"));
writeFileSync(join(tmp, "api-key"), KEY + "\n");
writeFileSync(join(tmp, "admin-key"), ADMIN + "\n");

// A bank the way a user makes one with the CLI: two good washers and a held-out good one for the
// threshold. (The tiny random-weight model tells parts apart poorly; with these images its
// threshold falls between good_06 and the stain, which is all a test of the page needs.)
const good = ["washer_01.png", "washer_02.png", "washer_03.png"].map((f) => join(SAMPLES, "good", f));
const bankPath = join(tmp, "banks", "washer.adbank");
execFileSync(BIN, ["fit", "-m", MODEL, "-o", bankPath, "--resolution", "112",
  "--calibrate", join(SAMPLES, "test", "good_07.png"),
  good[0], good[1]], { stdio: ["ignore", "ignore", "inherit"] });

const srv = spawn(BIN, ["serve", "-m", MODEL, "--bank", "washer=" + bankPath, "--bank-dir", join(tmp, "banks"),
  "--listen", "127.0.0.1:0", "--api-key-file", join(tmp, "api-key"), "--admin-key-file", join(tmp, "admin-key"),
  "--workers", "2", "--threads-per-worker", "1"], { stdio: ["ignore", "pipe", "pipe"] });
let out = "", errText = "";
srv.stdout.on("data", (d) => { out += d; });
srv.stderr.on("data", (d) => { errText += d; });
let browser = null;

async function main() {
  let base = null;
  for (let i = 0; i < 300 && !base; i++) { // <= 30 s for the socket
    const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    if (m) base = m[1];
    else await sleep(100);
  }
  check(base !== null, "the service prints its address");
  if (!base) throw new Error("no address; stderr: " + errText);
  let ready = false;
  for (let i = 0; i < 300 && !ready; i++) { // <= 30 s for the warm-up
    try { ready = (await fetch(base + "/health/ready")).status === 200; } catch (_) { /* not yet */ }
    if (!ready) await sleep(100);
  }
  check(ready, "the service becomes ready");

  const api = async (path, body, type, key = KEY) => {
    const r = await fetch(base + path, { method: body ? "POST" : "GET", body,
      headers: Object.assign({ Authorization: "Bearer " + key }, type ? { "Content-Type": type } : {}) });
    return { status: r.status, json: await r.json() };
  };
  const goodTest = join(SAMPLES, "test", "good_06.png"), bad = join(SAMPLES, "test", "stain.png");
  const apiGood = await api("/v1/banks/washer/predict", readFileSync(goodTest), "image/png");
  const apiBad = await api("/v1/banks/washer/predict", readFileSync(bad), "image/png");
  check(apiGood.json.verdict === "OK" && apiBad.json.verdict === "NG",
    "API: the good washer is OK and the stained one NG (" + apiGood.json.score + " / " + apiBad.json.score +
    ", threshold " + apiGood.json.threshold + ")");

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await ctx.newPage();
  let shot = 0;
  const snap = async (name) => page.screenshot({ path: join(SHOTS, String(++shot).padStart(2, "0") + "-" + name + ".png"), fullPage: true });

  // 1. the page itself: built into the binary, nothing from outside
  const external = [];
  page.on("request", (rq) => { if (!rq.url().startsWith(base) && !rq.url().startsWith("data:") && !rq.url().startsWith("blob:")) external.push(rq.url()); });
  const resp = await page.goto(base + "/", { waitUntil: "load", timeout: 15000 });
  check(resp.status() === 200 && (await page.title()) === "anomalydino", "the page loads at /");
  await snap("loaded");
  await page.fill("#key", KEY);
  await page.click("#key-save");
  await page.waitForFunction(() => document.querySelectorAll("#bank option").length > 0, null, { timeout: 10000 });
  check(await page.$eval("#bank", (s) => s.value) === "washer", "the bank list shows 'washer'");

  // 2. a good and a defective image: OK and NG, with the scores the API returns
  await page.setInputFiles("#files", [goodTest, bad]);
  await page.waitForFunction(() => [...document.querySelectorAll(".card .score")].filter((e) => /^\d/.test(e.textContent)).length === 2, null, { timeout: 30000 });
  const cards = await page.$$eval(".card", (cs) => cs.map((c) => ({ name: c.querySelector(".name").textContent,
    score: c.querySelector(".score").textContent, verdict: c.querySelector(".verdict").textContent,
    timings: c.querySelector(".timings").textContent, ov: c.querySelector(".ov").naturalWidth })));
  const byName = Object.fromEntries(cards.map((c) => [c.name, c]));
  const cg = byName["good_06.png"], cb = byName["stain.png"];
  check(cg && cg.verdict === "OK" && cg.score === Number(apiGood.json.score).toFixed(6),
    "good image: OK, score " + (cg && cg.score) + " = the API's " + Number(apiGood.json.score).toFixed(6));
  check(cb && cb.verdict === "NG" && cb.score === Number(apiBad.json.score).toFixed(6),
    "defective image: NG, score " + (cb && cb.score) + " = the API's " + Number(apiBad.json.score).toFixed(6));
  check(cards.every((c) => /decode .* features .* search .* map/.test(c.timings) && c.ov > 0), "each card shows the overlay and the stage timings");
  await snap("inspected");

  // 3. the slider re-judges in the browser; the bank's threshold is unchanged
  const lowest = Math.min(apiGood.json.score, apiBad.json.score);
  await page.$eval("#thr", (s, v) => { s.value = v; s.dispatchEvent(new Event("input")); }, String(lowest / 2));
  const after = await page.$$eval(".card .verdict", (vs) => vs.map((v) => v.textContent));
  check(after.every((v) => v === "NG"), "a threshold below both scores turns both NG: " + after.join(","));
  check(/threshold is unchanged/.test(await page.textContent("#thr-note")), "the page says the stored threshold is unchanged");
  const stored = await api("/v1/banks/washer");
  check(stored.json.threshold.value === apiGood.json.threshold, "the bank's stored threshold is indeed unchanged");
  await snap("slider");
  await page.click("#thr-reset");

  // 4. why is it NG: click the overlay, see the nearest reference patch
  const ov = await page.$(".card:has(.name:text-is('stain.png')) img.ov");
  const box = await ov.boundingBox();
  await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.3);
  await page.waitForSelector(".card:has(.name:text-is('stain.png')) .nearest-text", { timeout: 30000 });
  const near = await page.textContent(".card:has(.name:text-is('stain.png')) .nearest-text");
  check(/nearest reference patch in washer_0[12]\.png at \(\d+, \d+\).*distance \d\.\d{6}/.test(near), "nearest-patch panel: " + near);
  await snap("nearest");

  // 5. history: table, histogram, CSV
  await page.click("nav button[data-tab=history]");
  const rows = await page.$$eval("#hist-rows tr", (r) => r.length);
  check(rows === 2, "the history table lists the 2 results");
  const dl = page.waitForEvent("download", { timeout: 10000 });
  await page.click("#export");
  const csv = readFileSync(await (await dl).path(), "utf8");
  check(csv.startsWith("n,time,image,bank,score,threshold,verdict,ms\n") && csv.includes("stain.png"), "CSV export");
  await snap("history");

  // 6. set up a part: a bank from three good images, built on the server, then used
  await page.click("nav button[data-tab=setup]");
  await page.fill("#key", ADMIN);
  await page.click("#key-save");
  await page.fill("#fit-name", "part_b");
  await page.setInputFiles("#fit-good", good);
  await page.selectOption("#fit-res", "224");
  await page.click("#fit-go");
  await page.waitForFunction(() => /built|HTTP/.test(document.querySelector("#fit-msg").textContent), null, { timeout: 120000 });
  const fitMsg = await page.textContent("#fit-msg");
  check(/Bank 'part_b' built: 3 reference\(s\)/.test(fitMsg), "fit: " + fitMsg);
  check(await page.$eval("#bank", (s) => [...s.options].some((o) => o.value === "part_b")), "part_b appears in the bank list");
  await snap("fitted");
  await page.click("nav button[data-tab=inspect]");
  await page.selectOption("#bank", "part_b");
  await page.setInputFiles("#files", [bad]);
  await page.waitForFunction(() => document.querySelectorAll(".card").length === 3 && /^\d/.test(document.querySelector(".card .score").textContent), null, { timeout: 30000 });
  const viaB = await api("/v1/banks/part_b/predict", readFileSync(bad), "image/png", ADMIN);
  check(await page.textContent(".card .score") === Number(viaB.json.score).toFixed(6), "predict with the new bank: " + viaB.json.score);
  await snap("new-bank");

  // 7. a wrong key: the server's message is shown
  await page.fill("#key", "wrong-key-wrong-key-wrong");
  await page.click("#key-save");
  await page.waitForSelector("#error.show", { timeout: 10000 });
  const shown = await page.textContent("#error");
  const wrong = await api("/v1/banks", null, null, "wrong-key-wrong-key-wrong");
  check(wrong.status === 401 && shown.includes(wrong.json.error.message), "wrong key: the page shows '" + shown + "'");
  await snap("wrong-key");

  // 8. a tablet's width
  await page.setViewportSize({ width: 768, height: 1024 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "no horizontal scrolling at 768 px (overflow " + overflow + " px)");
  await snap("tablet");
  check(external.length === 0, "no request leaves the service: " + external.join(" "));
}

let code = 0;
try { await main(); } catch (e) { failed++; console.log("FAIL " + (e && e.stack || e)); }
finally {
  if (browser) await browser.close().catch(() => {});
  srv.kill("SIGTERM");
  const exited = await Promise.race([new Promise((r) => srv.on("exit", (c) => r(c))), sleep(15000).then(() => "timeout")]);
  check(exited === 0, "the service drains and exits 0 on SIGTERM (" + exited + ")");
  if (exited === "timeout") srv.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
  console.log("screenshots: " + SHOTS);
  console.log(passed + " passed, " + failed + " failed");
  code = failed ? 1 : 0;
}
process.exit(code);
