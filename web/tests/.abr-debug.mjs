import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
const url = process.argv[2];
const profile = mkdtempSync(join(tmpdir(), "abrdbg-"));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true,
  args: ["--headless","--no-sandbox","--disable-gpu","--disable-quic","--no-first-run","--disable-background-networking","--disable-component-update","--disable-sync"], viewport:{width:1280,height:800}});
const page = ctx.pages()[0] || await ctx.newPage();
page.on("console", m => console.log("console", m.type(), m.text()));
await page.goto(url);
for (let i = 0; i < 24; i++) {
  await page.waitForTimeout(500);
  console.log(JSON.stringify(await page.evaluate(() => {
    const p = window.__player; const v = p.video; const q = v.getVideoPlaybackQuality();
    const r = (b) => { const o=[]; for (let i=0;i<b.length;i++) o.push([+b.start(i).toFixed(3), +b.end(i).toFixed(3)]); return o; };
    const sb = p.hls && p.hls.bufferController && p.hls.bufferController.tracks ? Object.fromEntries(Object.entries(p.hls.bufferController.tracks).map(([k,t]) => [k, t.buffer ? r(t.buffer.buffered) : null])) : null;
    return { t: +v.currentTime.toFixed(3), f: q.totalVideoFrames, d: q.droppedVideoFrames, h: v.videoHeight, rs: v.readyState, buf: r(v.buffered), sb, lvl: p.hls && p.hls.currentLevel };
  })));
  if (i === 8) await page.evaluate(() => { window.__player.hls.currentLevel = 0; });
}
await ctx.close(); rmSync(profile, { recursive: true, force: true });
