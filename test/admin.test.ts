/**
 * `maskfleet report | retry | clean` against real Redis and a real in-process fleet (tiny SAM
 * graphs, composite generator): a run where some images fail at detect and one at generate.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import sharp from "sharp";
import { AdminError, cleanRun, parseStage, reasonMatcher } from "../src/runs/admin.js";
import { retryRun } from "../src/runs/retry.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { formatReport, runReport } from "../src/runs/report.js";
import { normaliseReason } from "../src/runs/reasons.js";
import { runStatus, waitForRun } from "../src/runs/status.js";
import { resolveConfig, type Config } from "../src/config/config.js";
import { RejectedError, ThrottledError } from "../src/runtime/errors.js";
import { generateJobData, generateJobOf, outPrefixOf, queuedImageOf, type DataOf } from "../src/pipeline/jobs.js";
import { pickImageOptions } from "../src/config/image-options.js";
import { keyPrefix, stages } from "../src/pipeline/queues.js";
import { connect } from "../src/runtime/redis.js";
import { RunState } from "../src/runs/run-state.js";
import { createContext, type WorkerContext } from "../src/stages/context.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import type { Generator } from "../src/generators/generator.js";
import { startPool } from "../src/fleet/pool.js";
import { freshRedis, listFiles, repoRoot, runMaskfleet, scratchDir, tinyModels, until, scanKeys, runImages } from "./helpers.js";

const photo = (name: string) => join(repoRoot, "samples", "photos", name);

describe("run administration: report, retry, clean", () => {
  let config: Config;
  let fleet: Fleet;
  let redis: Redis;
  let redisUrl: string;
  let inputDir: string;
  let outDir: string;
  let bgFile: string;
  const idOf = new Map<string, string>();

  const pauseFleet = () => Promise.all(fleet.pools.map((p) => p.worker.pause()));
  const resumeFleet = () => Promise.all(fleet.pools.map((p) => p.worker.resume()));
  /** A detect worker outside the fleet whose jobs stay active until released (or closed). */
  const holdDetectJobs = () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const connection = connect(redisUrl);
    const worker = new Worker("detect", () => gate, { connection, prefix: keyPrefix });
    return {
      release: () => release(),
      async close() {
        release();
        await worker.close();
        await connection.quit();
      },
    };
  };

  before(async () => {
    redisUrl = await freshRedis(11);
    const models = await tinyModels();
    const dir = await scratchDir("admin");
    inputDir = join(dir, "in");
    outDir = join(dir, "out");
    await scratchDir("admin/in");
    for (const p of ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg"]) await copyFile(photo(p), join(inputDir, p));
    // Two different images with one cause (too small), one with another (empty).
    await sharp({ create: { width: 1, height: 1, channels: 3, background: "white" } })
      .png()
      .toFile(join(inputDir, "tiny-a.png"));
    await sharp({ create: { width: 1, height: 1, channels: 3, background: "black" } })
      .png()
      .toFile(join(inputDir, "tiny-b.png"));
    await writeFile(join(inputDir, "empty.jpg"), "");
    bgFile = join(dir, "bg.png");
    // A picture when enqueued (preflight reads its header); text by the time the worker opens it (below).
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 1, g: 2, b: 3 } } })
      .png()
      .toFile(bgFile);
    config = resolveConfig({
      target: "auto",
      samModel: models.sam,
      out: outDir,
      redisUrl,
      prompts: ["studio white background"],
      seeds: { from: 34, to: 35 },
      attempts: 2,
      concurrency: { detect: 2, mask: 1, generate: 2, finalize: 1 },
    });
    fleet = startFleet(config, stages);
    redis = fleet.ctx.redis;
    const item = (name: string) => ({ path: join(inputDir, name), name });
    await enqueueImages(redis, config, "adm", ["chelsea.jpg", "coffee.jpg", "tiny-a.png", "tiny-b.png", "empty.jpg"].map(item));
    // Same run, one photo whose composite background file is not an image: both its results fail.
    await enqueueImages(redis, { ...config, background: bgFile }, "adm", [item("rocket.jpg")]);
    await writeFile(bgFile, "not a picture");
    await waitForRun(redis, "adm", { intervalMs: 100, timeoutMs: 120_000 });
    // Another run of one of adm's images (chelsea: its outputs are reused) and one of its own.
    await enqueueImages(redis, config, "other", [item("chelsea.jpg"), item("astronaut.jpg")]);
    await waitForRun(redis, "other", { intervalMs: 100, timeoutMs: 60_000 });
    for (const run of ["adm", "other"]) for (const [name, img] of await runImages(redis, run, outDir)) idOf.set(name, img.imageId);
  });

  after(async () => {
    await fleet?.close();
  });

  it("run state counts each stage and each image once, however often a job reports it", async () => {
    const state = new RunState(redis);
    const ids = ["a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2"];
    assert.deepEqual(
      await state.register(
        "watch",
        ids.map((imageId) => ({ imageId, genTotal: 2 })),
      ),
      ["new", "new"],
    );
    assert.deepEqual(
      await state.register(
        "watch",
        ids.map((imageId) => ({ imageId, genTotal: 2 })),
      ),
      ["not-started", "not-started"],
    );
    const poll = () => runStatus(redis, "watch", false);
    assert.deepEqual([(await poll()).total, (await poll()).finished], [2, 0]);
    // A stalled job runs again and reports again: counted once.
    await state.stageDone("watch", ids[1] as string, "detect");
    await state.stageDone("watch", ids[1] as string, "detect");
    await state.resultDone("watch", ids[1] as string, 0);
    await state.resultDone("watch", ids[1] as string, 0);
    const s = await poll();
    assert.deepEqual([s.finished, s.stages.detect.done, s.stages.generate.done, s.stages.generate.total], [0, 1, 1, 4]);
    assert.deepEqual(await state.register("watch", [{ imageId: ids[1] as string, genTotal: 2 }]), ["started"]);
    const causes: [string, number][] = [["mask\tbad", 1]];
    const record = { stage: "mask" as const, reason: "bad", name: "b2.jpg", job: {}, notAttempted: 2, causes };
    const failure = { outcome: "failed" as const, stage: "mask" as const, name: "b2.jpg", failedResults: 0, notAttempted: 2, causes, record };
    assert.equal(await state.finished("watch", ids[1] as string, failure), true);
    assert.equal(await state.finished("watch", ids[1] as string, failure), false, "an image finishes once");
    // Nothing counts for a finished image any more (a late job of it).
    await state.stageDone("watch", ids[1] as string, "mask");
    await state.resultDone("watch", ids[1] as string, 1);
    const f = await poll();
    assert.deepEqual([f.finished, f.failed, f.stages.mask.done, f.stages.generate.done], [1, 1, 0, 1]);
    assert.deepEqual(f.failures, [{ name: "b2.jpg", stage: "mask", reason: "bad" }]);
    assert.deepEqual(
      (await state.reasons("watch")).map((g) => [g.kind, g.stage, g.reason, g.count, g.examples]),
      [["image", "mask", "bad", 1, ["b2.jpg"]]],
    );
    // Reopened for a retry: unfinished again, detect still done, its cause taken back.
    assert.equal(await state.reopen("watch", ids[1] as string, record), true);
    assert.equal(await state.reopen("watch", ids[1] as string, record), false, "once");
    const r = await poll();
    assert.deepEqual([r.finished, r.failed, r.stages.detect.done, r.failures.length], [0, 0, 1, 0]);
    assert.deepEqual(await state.reasons("watch"), []);
    assert.deepEqual((await state.images("watch")).find((i) => i.imageId === ids[1])?.done, ["detect"]);
    // Finished well although its detect and mask reports were lost (a worker killed between handing on and reporting): those stages count.
    assert.equal(await state.finished("watch", ids[0] as string, { outcome: "ok", stage: "finalize", name: "a1.jpg", failedResults: 0, causes: [] }), true);
    const ok = await poll();
    assert.deepEqual([ok.finished, ok.succeeded, ok.stages.detect.done, ok.stages.mask.done, ok.stages.finalize.done], [1, 1, 2, 1, 1]);
    await state.forget("watch");
    assert.deepEqual(await scanKeys(redis, `${keyPrefix}:run:watch*`), []);
  });

  it("reason filters and reason normalising", () => {
    assert.equal(reasonMatcher("NOT AN image")("bg.png: not an image"), true);
    assert.equal(reasonMatcher("not an image")("empty file"), false);
    assert.equal(reasonMatcher("/^tiny-a\\.png:/")("tiny-a.png: image is 1x1 px"), true);
    assert.equal(reasonMatcher("/^tiny-a\\.png:/")("tiny-b.png: image is 1x1 px"), false);
    assert.equal(reasonMatcher("/IMAGE/i")("image"), true);
    assert.equal(reasonMatcher(undefined)("anything"), true);
    assert.throws(() => reasonMatcher("/(/"), /^ConfigError: reason: \/\(\/ is not a valid regular expression/);
    assert.throws(() => parseStage("paint"), /stage: expected one of detect, mask, generate, finalize, got paint/);
    assert.equal(parseStage("mask"), "mask");
    assert.equal(normaliseReason("shots/a.jpg: empty file (0 bytes)", { name: "shots/a.jpg" }), "<image>: empty file (0 bytes)");
    assert.equal(normaliseReason("/in/shots/a.jpg: bad (a.jpg)", { name: "shots/a.jpg", input: "/in/shots/a.jpg" }), "<image>: bad (<image>)");
  });

  it("report: counts, failures grouped by cause, durations, generator calls", async () => {
    const r = await runReport(redis, "adm");
    assert.deepEqual(r.images, { total: 6, finished: 6, ok: 2, failed: 4, review: 0, inProgress: 0 });
    assert.deepEqual(r.results, { ok: 4, failed: 2, pending: 0, notAttempted: 6 });
    const groups = r.failures.images.map((g) => [g.stage, g.reason, g.count, [...g.examples].sort()]);
    assert.deepEqual(groups[0], ["detect", "<image>: image is 1x1 px, smaller than the 16x16 minimum", 2, ["tiny-a.png", "tiny-b.png"]]);
    assert.deepEqual(
      groups
        .slice(1)
        .map((g) => g.slice(0, 3))
        .sort(),
      [
        ["detect", "<image>: empty file (0 bytes)", 1],
        ["generate", r.failures.images.find((g) => g.stage === "generate")?.reason, 1],
      ],
    );
    assert.match(r.failures.images.find((g) => g.stage === "generate")?.reason ?? "", /^every generate job failed: .*bg\.png: not an image/);
    assert.equal(r.failures.results.length, 1, "both failed results have one cause");
    assert.equal(r.failures.results[0]?.count, 2);
    assert.deepEqual(r.failures.results[0]?.examples, ["rocket.jpg"]);
    assert.match(r.failures.results[0]?.reason ?? "", /bg\.png: not an image/);
    // Every job that ended: 6 detect, 3 mask (the good photos), 6 generate (4 ok + 2 failed), 3 finalize.
    assert.deepEqual(
      stages.map((s) => [s, r.durations[s].n]),
      [
        ["detect", 6],
        ["mask", 3],
        ["generate", 6],
        ["finalize", 3],
      ],
    );
    for (const s of stages) {
      const d = r.durations[s];
      assert.ok(d.medianMs !== null && d.p90Ms !== null && d.maxMs !== null && d.medianMs <= d.p90Ms && d.p90Ms <= d.maxMs, `${s} ordered`);
    }
    assert.ok(r.imagesPerMin !== null && r.imagesPerMin > 0);
    // chelsea's and coffee's results were made by the generator; rocket's failed before any call.
    assert.deepEqual(r.generator, { calls: 4, throttles: 0, rejected: 0 });
    assert.equal((await runReport(redis, "other")).generator.calls, 2, "astronaut's results count for the other run");
    assert.match(formatReport(r), /2 x \[detect\] <image>: image is 1x1 px/);
    await assert.rejects(runReport(redis, "nope"), AdminError);
  });

  it("the CLI writes the report file and names unknown runs and stages", async () => {
    const file = join(outDir, "..", "report.json");
    const r = await runMaskfleet(["report", "adm", "--out", file, "--redis", redisUrl], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /run adm: 6 images, 2 ok, 4 failed, 0 in progress; results 4 ok, 2 failed/);
    const json = JSON.parse(await readFile(file, "utf8"));
    assert.equal(json.images.failed, 4);
    const bad = await runMaskfleet(["clean", "nope", "--redis", redisUrl], { timeoutMs: 60_000 });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^maskfleet: no run named nope/);
    const stage = await runMaskfleet(["retry", "adm", "--stage", "paint", "--redis", redisUrl], { timeoutMs: 60_000 });
    assert.equal(stage.code, 2);
    assert.match(stage.stderr, /stage: expected one of detect, mask, generate, finalize/);
  });

  it("retry re-queues only the matching failures; once the cause is fixed they complete", async () => {
    const rocket = idOf.get("rocket.jpg") as string;
    const rocketPrefix = (await runImages(redis, "adm", outDir)).get("rocket.jpg")?.outPrefix as string;
    const manifestBefore = JSON.parse(await readFile(join(outDir, rocketPrefix, "manifest.json"), "utf8"));
    assert.deepEqual(
      manifestBefore.results.map((x: { status: string }) => x.status),
      ["failed", "failed"],
    );
    const poll = () => runStatus(redis, "adm", false);
    assert.equal((await poll()).finished, 6);
    await pauseFleet();
    try {
      const none = await retryRun(redis, "adm", { reason: "no such cause" });
      assert.deepEqual(none.requeued, { detect: 0, mask: 0, generate: 0, finalize: 0 });
      assert.deepEqual((await retryRun(redis, "adm", { stage: "mask" })).requeued, { detect: 0, mask: 0, generate: 0, finalize: 0 });
      // Fix the causes: a real background image, and tiny-a.png replaced by a photo.
      await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 20, g: 90, b: 200 } } })
        .png()
        .toFile(bgFile);
      await copyFile(photo("retina.jpg"), join(inputDir, "tiny-a.png"));

      const gen = await retryRun(redis, "adm", { reason: "BG.PNG: not an image" });
      assert.deepEqual(gen.requeued, { detect: 0, mask: 0, generate: 1, finalize: 0 });
      assert.equal(gen.images, 1);
      const det = await retryRun(redis, "adm", { stage: "detect", reason: "/^tiny-a\\.png: image is 1x1/" });
      assert.deepEqual(det.requeued, { detect: 1, mask: 0, generate: 0, finalize: 0 });

      // Until the workers run them, the two images count as in progress again; the others stay failed.
      const status = await runStatus(redis, "adm", false);
      assert.equal(status.finished, 4);
      assert.equal((await poll()).finished, 4, "re-opened images are seen");
      assert.deepEqual(status.failures.map((f) => f.name).sort(), ["empty.jpg", "tiny-b.png"]);
      // rocket's failed results run again under a new finalize job; tiny-a from detect.
      assert.equal((await fleet.ctx.queues.generate.getJobCounts("waiting")).waiting, 2);
      assert.equal((await fleet.ctx.queues.detect.getJobCounts("waiting")).waiting, 1);
    } finally {
      await resumeFleet();
    }
    const done = await waitForRun(redis, "adm", { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(done.finished, 6);
    assert.deepEqual(done.failures.map((f) => f.name).sort(), ["empty.jpg", "tiny-b.png"]);
    const images = await runImages(redis, "adm", outDir);
    for (const name of ["rocket.jpg", "tiny-a.png"]) {
      const img = images.get(name);
      assert.ok(img);
      assert.equal(img.failedStage, undefined, `${name}: ${img.reason}`);
      const manifest = JSON.parse(await readFile(join(outDir, img.outPrefix, "manifest.json"), "utf8"));
      assert.deepEqual(
        manifest.results.map((x: { status: string }) => x.status),
        ["ok", "ok"],
        name,
      );
    }
    const manifestAfter = JSON.parse(await readFile(join(outDir, rocketPrefix, "manifest.json"), "utf8"));
    assert.ok(manifestAfter.finishedAt > manifestBefore.finishedAt, "rocket's finalize ran again");
    assert.equal(rocket, images.get("rocket.jpg")?.imageId);

    const r = await runReport(redis, "adm");
    assert.deepEqual(r.images, { total: 6, finished: 6, ok: 4, failed: 2, review: 0, inProgress: 0 });
    assert.deepEqual(r.results, { ok: 8, failed: 0, pending: 0, notAttempted: 4 });
    assert.deepEqual(r.failures.results, [], "no failed generate job is left");
    assert.equal(r.generator.calls, 8, "4 before, 2 for rocket, 2 for tiny-a");
  });

  it("clean refuses while a job of the run is running, then removes its jobs and state, never an output", async () => {
    const runKeys = async () => (await scanKeys(redis)).filter((k) => k.includes(":run:adm"));
    assert.ok((await runKeys()).length > 0);

    // A detect job of the run held active by a worker that waits for us.
    await pauseFleet();
    const holder = holdDetectJobs();
    try {
      assert.equal((await retryRun(redis, "adm", { stage: "detect", reason: "1x1" })).requeued.detect, 1);
      await until("the held job is active", async () => (await fleet.ctx.queues.detect.getActiveCount()) === 1, 20_000, 50);
      await assert.rejects(cleanRun(redis, "adm"), (err: Error) => err instanceof AdminError && /run adm has 1 active jobs \(detect \d+-[0-9a-f]+\)/.test(err.message));
      assert.equal(await new RunState(redis).runExists("adm"), true, "nothing removed");
      holder.release();
      await until("the held job ended", async () => (await fleet.ctx.queues.detect.getActiveCount()) === 0, 20_000, 50);
    } finally {
      await holder.close();
    }

    const files = await listFiles(outDir);
    assert.ok(files.size > 20);
    const tag = (await redis.hget(`${keyPrefix}:run:adm`, "tag")) as string;
    // One job of the run still queued: added for an image whose detect was held (its state is unfinished).
    await fleet.ctx.queues.mask.add("mask", { runId: "adm" } as DataOf<"mask">, { jobId: `${tag}-${idOf.get("tiny-b.png")}` });
    const summary = await cleanRun(redis, "adm");
    assert.deepEqual(summary.removed, { detect: 0, mask: 1, generate: 0, finalize: 0 }, "finished jobs were gone already");
    assert.deepEqual([summary.forgotten, summary.left], [6, 0]);

    const keys = await scanKeys(redis);
    assert.deepEqual(await runKeys(), [], "no key of the run is left");
    assert.deepEqual(
      keys.filter((k) => new RegExp(`^${keyPrefix}:(detect|mask|generate|finalize):${tag}-`).test(k)),
      [],
      "nor a job of it",
    );
    const state = new RunState(redis);
    assert.deepEqual(await state.listRuns(), ["other"]);
    assert.deepEqual(await listFiles(outDir), files, "every output is still there, unchanged");
    // The other run of one of its images is intact.
    assert.equal((await runStatus(redis, "other", false)).succeeded, 2);
    await assert.rejects(cleanRun(redis, "adm"), /no run named adm/);

    // Enqueued again, a cleaned image runs again; its results are in the output, so the generator is not called.
    await resumeFleet();
    await enqueueImages(redis, config, "again", [{ path: join(inputDir, "coffee.jpg"), name: "coffee.jpg" }]);
    await waitForRun(redis, "again", { intervalMs: 100, timeoutMs: 60_000 });
    const again = await runReport(redis, "again");
    assert.deepEqual([again.images.ok, again.results.ok, again.generator.calls], [1, 2, 0]);
  });

  it("clean --force removes everything but a job still running", async () => {
    await pauseFleet();
    const holder = holdDetectJobs();
    try {
      await enqueueImages(
        redis,
        config,
        "busy",
        [
          { path: join(inputDir, "astronaut.jpg"), name: "astronaut-busy.jpg" },
          { path: join(inputDir, "tiny-b.png"), name: "tiny-b.png" },
        ].map((i) => ({ ...i, prompts: ["busy"] })),
      );
      await until("one job is active", async () => (await fleet.ctx.queues.detect.getActiveCount()) === 1, 20_000, 50);
      await assert.rejects(cleanRun(redis, "busy"), /active jobs/);
      const s = await cleanRun(redis, "busy", { force: true });
      assert.equal(s.left, 1);
      assert.equal(s.removed.detect, 1, "the waiting job went");
      assert.equal(await new RunState(redis).runExists("busy"), false);
    } finally {
      await holder.close();
    }
  });
});

describe("generator counters in the generate pool", () => {
  it("counts results made (not reused), throttles and rejections per run", async () => {
    const redisUrl = await freshRedis(12);
    const dir = await scratchDir("admin-counters");
    const config = resolveConfig({ target: "auto", out: dir, redisUrl, throttleBackoffMs: 20, attempts: 2 });
    const redis = connect(redisUrl);
    const ctx = createContext(config, redis);
    let calls = 0;
    const fake: Generator = {
      name: "fake",
      prepare: async (input) => ({ input, bytes: 0 }),
      async generate(req) {
        calls++;
        if (req.prompt === "refuse") throw new RejectedError("content filter");
        if (calls === 1) throw new ThrottledError("slow down", 30);
        return req.image;
      },
      async close() {},
    };
    const fakeCtx: WorkerContext = { ...ctx, generator: async () => fake };
    const meta = await sharp(photo("chelsea.jpg")).metadata();
    await sharp({ create: { width: meta.width, height: meta.height, channels: 3, background: "white" } })
      .png()
      .toFile(join(dir, "mask-src.png"));
    // An image of three results (the prompt "refuse" is refused), the third already made: reused.
    const options = { ...pickImageOptions(config), prompts: ["fine", "refuse"], seeds: { from: 0, to: 2 } };
    const imageId = "ab".repeat(12);
    const outPrefix = outPrefixOf("chelsea.jpg", imageId);
    const image = { runId: "counts", imageId, input: photo("chelsea.jpg"), name: "chelsea.jpg", out: dir, outPrefix, options };
    await scratchDir(`admin-counters/${outPrefix}/results`);
    await copyFile(join(dir, "mask-src.png"), join(dir, outPrefix, "mask.png"));
    await copyFile(join(dir, "mask-src.png"), join(dir, outPrefix, "cutout.png")); // the object's colours (estimateForeground)
    const results = [generateJobOf(image, 0, 0), generateJobOf(image, 1, 1), generateJobOf(image, 0, 2)];
    await copyFile(join(dir, "mask-src.png"), join(dir, results[2]!.resultKey));
    // The run holds the image's options; the finalize parent holds the image, its children refer to it.
    const { settingsId } = await new RunState(redis).create("counts", { options, out: dir });
    await ctx.flows.add({
      name: "finalize",
      queueName: "finalize",
      data: { ...queuedImageOf(image, settingsId, options), promptVars: { label: "cat", color: "white" } },
      opts: { jobId: image.imageId },
      children: results.map((g, i) => ({
        name: "generate",
        queueName: "generate",
        data: generateJobData(g),
        opts: { jobId: `g${i}`, attempts: 2, ignoreDependencyOnFailure: true },
      })),
    });
    const pool = startPool("generate", fakeCtx, { concurrency: 1, onFatal: () => undefined });
    try {
      await until(
        "the three jobs ended",
        async () => {
          const c = await ctx.queues.generate.getJobCounts("completed", "failed");
          return (c.completed ?? 0) + (c.failed ?? 0) === 3;
        },
        20_000,
        50,
      );
      assert.deepEqual(await new RunState(redis).counters("counts"), { generatorCalls: 1, throttles: 1, rejected: 1 });
      assert.equal(calls, 3, "throttled, made, refused; the existing result was not asked for");
    } finally {
      await pool.worker.close();
      await ctx.close();
      await redis.quit();
    }
  });
});
