/**
 * The whole fleet end to end on real photos: producer -> Redis/BullMQ -> detect -> mask (tiny
 * SAM graphs through the real loader and processing) -> generate (composite) -> finalize.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { resolveConfig, type Config } from "../src/config/config.js";
import { openQueue } from "../src/pipeline/queues.js";
import { connect } from "../src/runtime/redis.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { runStatus, waitForRun } from "../src/runs/status.js";
import { RunState } from "../src/runs/run-state.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { GOOD_FIXTURES, writeBadImages, type FixtureId } from "./fixtures/bad-images.js";
import { runImages, freshRedis, listFiles, repoRoot, scratchDir, tinyModels } from "./helpers.js";

const samplePhotos = join(repoRoot, "samples", "photos");

describe("fleet end to end", () => {
  let config: Config;
  let fleet: Fleet;
  let inputDir: string;
  let outDir: string;
  let photos: string[];
  let bad: Record<FixtureId, string>;

  before(async () => {
    const redisUrl = await freshRedis(3);
    const models = await tinyModels();
    const dir = await scratchDir("fleet");
    inputDir = join(dir, "in");
    outDir = join(dir, "out");
    photos = (await readdir(samplePhotos)).filter((f) => f.endsWith(".jpg"));
    assert.ok(photos.length >= 4, "the sample photos are there");
    await scratchDir("fleet/in");
    for (const p of photos) await copyFile(join(samplePhotos, p), join(inputDir, p));
    bad = await writeBadImages(join(inputDir, "bad"));
    config = resolveConfig({
      target: "auto",
      samModel: models.sam,
      out: outDir,
      redisUrl,
      prompts: ["studio white background", "sunny beach"],
      seeds: { from: 34, to: 35 },
      attempts: 2,
      concurrency: { detect: 2, mask: 1, generate: 4, finalize: 2 },
    });
    fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
  });

  after(async () => {
    await fleet?.close();
  });

  it("processes every good photo, fails each bad file alone with a reason", async () => {
    const items = discoverInputs([inputDir]);
    const summary = await enqueueImages(fleet.ctx.redis, config, "e2e", items);
    assert.equal(summary.added, items.length);
    const status = await waitForRun(fleet.ctx.redis, "e2e", { intervalMs: 200, timeoutMs: 120_000 });
    assert.equal(status.finished, items.length);
    const byName = await runImages(fleet.ctx.redis, "e2e", outDir);
    const images = [...byName.values()];

    for (const p of photos) {
      const img = byName.get(p);
      assert.ok(img, `${p} is in the run`);
      assert.equal(img.failedStage, undefined, `${p} did not fail: ${img.reason}`);
      const dir = join(outDir, img.outPrefix);
      const meta = await sharp(join(inputDir, p)).metadata();
      for (const f of ["mask.png", "mask-bedrock.png", "cutout.png"]) {
        const m = await sharp(join(dir, f)).metadata();
        assert.deepEqual([m.width, m.height], [meta.width, meta.height], `${p} ${f} has the photo's size`);
      }
      const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
      assert.equal(manifest.results.length, 4, "2 prompts x 2 seeds");
      assert.deepEqual(
        manifest.results.map((r: { promptIndex: number; seed: number; status: string }) => [r.promptIndex, r.seed, r.status]),
        [
          [0, 34, "ok"],
          [0, 35, "ok"],
          [1, 34, "ok"],
          [1, 35, "ok"],
        ],
      );
      assert.equal(manifest.detections.boxes.length, 1);
      assert.ok(manifest.mask.stats.area > 0);
      assert.equal(manifest.mask.timings.encodeMs >= 0, true);
      for (const r of manifest.results) {
        const rm = await sharp(join(outDir, r.key)).metadata();
        assert.deepEqual([rm.width, rm.height], [meta.width, meta.height]);
      }
      const sheet = await sharp(join(dir, "contact-sheet.jpg")).metadata();
      assert.ok((sheet.width ?? 0) > 0);
      // The Bedrock mask holds only pure black and pure white.
      const { data } = await sharp(join(dir, "mask-bedrock.png")).raw().toBuffer({ resolveWithObject: true });
      assert.ok(data.every((v) => v === 0 || v === 255));
    }

    // Strange but valid photos (CMYK, 16-bit, alpha, EXIF-rotated, animated, grey, palette) complete.
    for (const key of Object.keys(GOOD_FIXTURES) as (keyof typeof GOOD_FIXTURES)[]) {
      const img = images.find((i) => join(inputDir, i.name) === bad[key]);
      assert.ok(img, `${key} is in the run`);
      if (key === "panorama") {
        // It decodes, but SAM would see it 1 px tall: refused at mask, with why.
        assert.equal(img.failedStage, "mask");
        assert.match(img.reason ?? "", /^bad\/panorama-30000x20\.png: a 30000x20 image is 1024x1 at SAM's 1024-px input, too elongated to segment/);
        continue;
      }
      assert.equal(img.failedStage, undefined, `${key} did not fail: ${img.reason}`);
    }
    const badNames = ["empty", "notAnImage", "truncatedJpeg", "truncatedPng", "corruptPng", "bomb", "tiny"] as const;
    for (const key of badNames) {
      const path = bad[key];
      assert.ok(path, `fixture ${key}`);
      const img = images.find((i) => join(inputDir, i.name) === path);
      assert.ok(img, `${key} is in the run`);
      assert.equal(img.failedStage, "detect", `${key} failed at detect`);
      assert.match(img.reason ?? "", /\S+: .+/, `${key} has a reason naming the file`);
    }
    // Each is recorded with its reason after its first attempt (a bad file is not retried), and its job is gone from the queue.
    const records = await new RunState(fleet.ctx.redis).failures("e2e", 1000);
    for (const key of badNames) {
      const record = records.find((r) => (r.job as { input: string }).input === bad[key]);
      assert.ok(record, `${key} has a failure record`);
      assert.equal(record.attempts, 1, `${key}: not retried`);
      assert.match(record.reason, /\S+: .+/);
    }
    assert.equal((await fleet.ctx.queues.detect.getJobCounts("failed")).failed, 0, "finished jobs leave the queue");
    const status2 = await runStatus(fleet.ctx.redis, "e2e");
    assert.equal(status2.succeeded + status2.failed, items.length);
    assert.ok(status2.failed >= badNames.length);
  });

  it("enqueueing the same folder into the run again adds no jobs and writes nothing", async () => {
    const before = await listFiles(outDir);
    const items = discoverInputs([inputDir]);
    const summary = await enqueueImages(fleet.ctx.redis, config, "e2e", items);
    assert.equal(summary.added, 0);
    assert.equal(summary.alreadyKnown, items.length);
    const counts = await fleet.ctx.queues.detect.getJobCounts("waiting", "active", "delayed");
    assert.deepEqual(counts, { waiting: 0, active: 0, delayed: 0 });
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await listFiles(outDir), before);
  });

  it("a new run of the same folder reuses every stored output: only the manifests and contact sheets are written again", async () => {
    const before = await listFiles(outDir);
    const items = discoverInputs([inputDir]);
    const summary = await enqueueImages(fleet.ctx.redis, config, "e2e-again", items);
    assert.equal(summary.added, items.length, "a run has jobs of its own");
    const status = await waitForRun(fleet.ctx.redis, "e2e-again", { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(status.finished, items.length);
    const first = await runStatus(fleet.ctx.redis, "e2e");
    assert.deepEqual([status.succeeded, status.failed], [first.succeeded, first.failed], "the same outcome");
    const after = await listFiles(outDir);
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), "no new file");
    const rewritten = [...after].filter(([path, mtime]) => before.get(path) !== mtime).map(([path]) => path.slice(path.lastIndexOf("/") + 1));
    assert.ok(rewritten.length > 0);
    assert.deepEqual([...new Set(rewritten)].sort(), ["contact-sheet.jpg", "manifest.json"]);
    for (const img of (await runImages(fleet.ctx.redis, "e2e-again", outDir)).values()) {
      if (img.failedStage) continue;
      const manifest = JSON.parse(await readFile(join(outDir, img.outPrefix, "manifest.json"), "utf8"));
      assert.equal(manifest.runId, "e2e-again");
      assert.ok(
        manifest.results.every((r: { reused: boolean }) => r.reused),
        `${img.name}: every result reused`,
      );
    }
  });

  it("a failed generate job is recorded on its result with the reason; the image fails at generate", async () => {
    const notAnImage = join(inputDir, "..", "background.png");
    // A picture when enqueued (preflight reads its header), text by the time a worker opens it.
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 1, g: 2, b: 3 } } })
      .png()
      .toFile(notAnImage);
    const one = discoverInputs([join(inputDir, photos[0] as string)]);
    await enqueueImages(fleet.ctx.redis, { ...config, background: notAnImage }, "e2e-bad-background", one);
    await writeFile(notAnImage, "not a picture");
    const status = await waitForRun(fleet.ctx.redis, "e2e-bad-background", { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(status.failed, 1);
    const [img] = (await runImages(fleet.ctx.redis, "e2e-bad-background", outDir)).values();
    assert.ok(img);
    assert.equal(img.failedStage, "generate");
    assert.match(img.reason ?? "", /every generate job failed: .*background\.png: not an image/);
    const manifest = JSON.parse(await readFile(join(outDir, img.outPrefix, "manifest.json"), "utf8"));
    assert.equal(manifest.results.length, 4);
    for (const r of manifest.results) {
      assert.equal(r.status, "failed");
      assert.match(r.reason, /background\.png: not an image/);
    }
  });

  it("a background that is neither a colour nor an existing file is refused at enqueue", async () => {
    const one = discoverInputs([join(inputDir, photos[0] as string)]);
    await assert.rejects(
      enqueueImages(fleet.ctx.redis, { ...config, background: "/nowhere/bg.png" }, "e2e-no-background", one),
      /^ConfigError: background: \/nowhere\/bg.png is neither/,
    );
  });
});

describe("a producer that died between registering an image and adding its job", () => {
  it("the next enqueue adds the missing job, once", async () => {
    const redis = connect(await freshRedis(13));
    const queue = openQueue("detect", redis);
    try {
      const config = resolveConfig({ target: "auto", redisUrl: "unused", out: await scratchDir("crashed-producer-out") });
      const items = discoverInputs([join(samplePhotos, "rocket.jpg")]);
      const first = await enqueueImages(redis, config, "crashed", items);
      assert.equal(first.added, 1);
      // The crash: the image is registered, its job never made it.
      const [job] = await queue.getJobs(["waiting"]);
      assert.ok(job?.id);
      await job.remove();
      const again = await enqueueImages(redis, config, "crashed", items);
      assert.equal(again.added, 1, "the missing job is added");
      assert.ok(await queue.getJob(job.id));
      // While it waits, enqueueing again adds nothing more.
      assert.equal((await enqueueImages(redis, config, "crashed", items)).added, 0);
      assert.equal((await queue.getJobCounts("waiting")).waiting, 1);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });
});

describe("redis connection", () => {
  it("status of an unknown run is a clear error", async () => {
    const url = await freshRedis(4);
    const redis = connect(url);
    try {
      await assert.rejects(runStatus(redis, "nope"), /no run named nope/);
    } finally {
      redis.disconnect();
    }
  });
});
