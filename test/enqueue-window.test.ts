/**
 * The producer streams its inputs into Redis with backpressure: at most `window` unfinished images
 * of the run at once, more added as images finish; its cursor is checkpointed after every batch,
 * so a producer killed at any point resumes with `enqueue --run RUN` without adding an image twice
 * or losing one. The catalog is an S3 prefix on the local S3 server: ids come from the listing's
 * ETag and size, so nothing is downloaded at enqueue.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import { enqueueInputs } from "../src/producer/enqueue.js";
import { resolveConfig } from "../src/config/config.js";
import { keyPrefix, openQueue } from "../src/pipeline/queues.js";
import { connect } from "../src/runtime/redis.js";
import { RunState } from "../src/runs/run-state.js";
import { startS3Server, type S3Server } from "./standins/s3-server.js";
import { standInCredentials } from "./scenarios/aws-fleet.js";
import { cliEntry, freshRedis, runMaskfleet, scanKeys, scratchDir, sleep, until } from "./helpers.js";

let s3: S3Server;
let redisUrl: string;
let redis: Redis;
let dir: string;

const catalog = (n: number, prefix: string) => {
  for (let i = 0; i < n; i++) s3.putObject("in-bucket", `${prefix}/item-${String(i).padStart(5, "0")}.jpg`, Buffer.from(`photo ${prefix} ${i}`));
};

before(async () => {
  Object.assign(process.env, standInCredentials);
  s3 = await startS3Server();
  s3.createBucket("in-bucket");
  redisUrl = await freshRedis(13);
  redis = connect(redisUrl);
  dir = await scratchDir("enqueue-window");
});

after(async () => {
  await redis.quit();
  await s3.close();
});

describe("streaming enqueue", () => {
  it("keeps at most --window unfinished images in Redis and adds more as images finish", async () => {
    catalog(60, "win");
    const config = resolveConfig({ target: "auto", out: join(dir, "out"), redisUrl, region: "us-east-1", s3Endpoint: s3.endpoint });
    const state = new RunState(redis);
    // The fleet's fast no-op path: a detect worker that only records each image as finished.
    const workerConnection = connect(redisUrl);
    const worker = new Worker(
      "detect",
      async (job) => {
        await sleep(5);
        const { runId, imageId, name } = job.data as { runId: string; imageId: string; name: string };
        await state.finished(runId, imageId, { outcome: "ok", stage: "finalize", name, failedResults: 0, causes: [] });
      },
      { connection: workerConnection, prefix: keyPrefix, concurrency: 2, autorun: false },
    );
    const queue = openQueue("detect", redis);
    let most = 0;
    let fullSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { images, finished } = await state.progress("win");
        most = Math.max(most, images - finished);
        await sleep(2);
      }
    })();
    try {
      const enqueued = enqueueInputs(redis, config, "win", ["s3://in-bucket/win/"], { window: 10, pageSize: 7, onWindowFull: () => void fullSeen++ });
      // No worker yet: the producer stops at the window.
      await until("the window is full", async () => (await state.progress("win")).images === 10, 10_000);
      await sleep(300);
      assert.equal((await state.progress("win")).images, 10, "nothing beyond the window while no image finishes");
      assert.equal(await queue.getWaitingCount(), 10);
      assert.ok(fullSeen >= 1);
      void worker.run();
      const summary = await enqueued;
      assert.deepEqual([summary.images, summary.added, summary.alreadyKnown], [60, 60, 0]);
      await until("every image finished", async () => (await state.progress("win")).finished === 60, 20_000);
      assert.ok(most <= 10, `at most 10 unfinished at once, saw ${most}`);
      assert.equal(await state.listing("win"), false, "the listing is done");
      // Every object once: 60 images, each finished once, and their jobs gone from the queue.
      assert.equal(await state.imageCount("win"), 60);
      assert.deepEqual(await queue.getJobCounts("waiting", "active", "completed", "failed"), { waiting: 0, active: 0, completed: 0, failed: 0 });
      // Ids came from the listing: not one object was read or HEADed.
      assert.equal(s3.requests.filter((r) => r.op === "GetObject" || r.op === "HeadObject").length, 0);
    } finally {
      sampling = false;
      await sampler;
      await worker.close();
      await workerConnection.quit();
      await queue.close();
    }
  });

  it("a producer killed mid-catalog resumes with `enqueue --run`: no image added twice, none lost, no page listed again", async () => {
    const n = 3000;
    catalog(n, "big");
    const out = join(dir, "out-big");
    const args = [
      "enqueue",
      "s3://in-bucket/big/",
      "--run",
      "resume",
      "--out",
      out,
      "--redis",
      redisUrl,
      "--s3-endpoint",
      s3.endpoint,
      "--region",
      "us-east-1",
      "--target",
      "auto",
    ];
    const env = { ...process.env, ...standInCredentials, MASKFLEET_LOG_LEVEL: "warn" };
    const state = new RunState(redis);
    // Killed with SIGKILL once part of the catalog is in: no chance to clean up.
    const child = spawn(process.execPath, [cliEntry(), ...args], { env, stdio: "ignore" });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    await until("part of the catalog is in", async () => (await state.imageCount("resume")) >= 700, 60_000, 5);
    child.kill("SIGKILL");
    await exited;
    const before = await state.imageCount("resume");
    assert.ok(before < n, `killed before the end (${before} of ${n} in)`);
    assert.equal(await state.listing("resume"), true, "a killed producer leaves the listing open");
    const listedBefore = s3.requests.filter((r) => r.op === "ListObjectsV2").length;

    const again = await runMaskfleet(args, { env, timeoutMs: 120_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, "resume\n");
    const pages = s3.requests.filter((r) => r.op === "ListObjectsV2").length - listedBefore;
    assert.ok(pages < Math.ceil(n / 1000) + 1 && pages <= Math.ceil((n - before + 1000) / 1000) + 1, `resumed from the checkpoint: ${pages} pages listed again`);
    assert.equal(await state.imageCount("resume"), n);
    assert.equal(await state.listing("resume"), false);
    // Each image exactly once in the queue: n detect jobs, ids equal to the run's images.
    const jobKeys = (await scanKeys(redis, `${keyPrefix}:detect:*`)).filter((k) => /:detect:\d+-[0-9a-f]{24}$/.test(k));
    const images = new Set(await redis.hkeys(`${keyPrefix}:run:resume:images`));
    assert.equal(jobKeys.length, n);
    assert.ok(jobKeys.every((k) => images.has(k.slice(k.lastIndexOf("-") + 1))));
    const detect = openQueue("detect", redis);
    assert.equal(await detect.count(), n);
    await detect.close();

    // Once more: everything is known, nothing added.
    const third = await runMaskfleet(args, { env, timeoutMs: 120_000 });
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /enqueued 0 new images/);
    assert.equal(await state.imageCount("resume"), n);
  });
});
