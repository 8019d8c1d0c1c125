/**
 * The mask stage's three writes when the store fails (a full disk, no permission): the worker
 * process lives, the job retries or fails with the reason naming the file, nothing partial stays,
 * and the other images go on.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { resolveConfig, type Config } from "../src/config/config.js";
import { connect } from "../src/runtime/redis.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import { RunState } from "../src/runs/run-state.js";
import type { Store } from "../src/storage/store.js";
import { createContext, type WorkerContext } from "../src/stages/context.js";
import { startPool, type Pool } from "../src/fleet/pool.js";
import { freshRedis, repoRoot, scratchDir, storeWithWrite, tinyModels, runImages } from "./helpers.js";

const stages = ["detect", "mask", "generate", "finalize"] as const;

/**
 * A body the real LocalStore starts writing (its temporary file gets a first chunk) and that then
 * fails as the device would: fs writeFile takes iterables, so the failure happens mid-write.
 */
function failingBody(code: string): Buffer {
  function* chunks(): Generator<Buffer> {
    yield Buffer.alloc(4096, 1);
    throw Object.assign(new Error(`${code}: failed, write`), { code, syscall: "write" });
  }
  return { [Symbol.iterator]: chunks } as unknown as Buffer;
}

/** The real store, whose writes of the keys `failures` picks fail mid-write with that errno code. */
function failingStore(inner: Store, failures: (key: string) => string | undefined, seen: string[]): Store {
  return storeWithWrite(inner, (key, body, contentType) => {
    const code = failures(key);
    if (!code) return inner.write(key, body, contentType);
    seen.push(`${code} ${key}`);
    return inner.write(key, failingBody(code), contentType);
  });
}

describe("mask stage: a store error on one of its three writes", () => {
  let config: Config;
  let redis: Redis;
  let ctx: WorkerContext;
  let pools: Pool[] = [];
  let outDir: string;
  const unhandled: unknown[] = [];
  const recordUnhandled = (reason: unknown) => unhandled.push(reason);
  const failedWrites: string[] = [];

  before(async () => {
    process.on("unhandledRejection", recordUnhandled);
    const redisUrl = await freshRedis(5);
    const models = await tinyModels();
    const dir = await scratchDir("mask-write-errors");
    const inputDir = join(dir, "in");
    outDir = join(dir, "out");
    await scratchDir("mask-write-errors/in");
    for (const p of ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]) await copyFile(join(repoRoot, "samples/photos", p), join(inputDir, p));
    config = resolveConfig({
      target: "auto",
      samModel: models.sam,
      out: outDir,
      redisUrl,
      prompts: ["studio white background"],
      seeds: { from: 1, to: 1 },
      attempts: 2,
      concurrency: { detect: 2, mask: 2, generate: 2, finalize: 1 },
    });
    redis = connect(redisUrl);
    const base = createContext(config, redis);
    // chelsea: the disk is full when its second mask write (mask-bedrock.png) runs; coffee: its
    // first (mask.png) is refused (no permission); rocket: every write succeeds.
    const failures = (key: string) => (/^chelsea-[0-9a-f]+\/mask-bedrock\.png$/.test(key) ? "ENOSPC" : /^coffee-[0-9a-f]+\/mask\.png$/.test(key) ? "EACCES" : undefined);
    ctx = { ...base, store: (root) => failingStore(base.store(root), failures, failedWrites) };
    pools = stages.map((s) => startPool(s, ctx, { concurrency: config.concurrency[s], onFatal: () => undefined }));
    const items = ["chelsea.jpg", "coffee.jpg", "rocket.jpg"].map((name) => ({ path: join(inputDir, name), name }));
    await enqueueImages(redis, config, "mask-write", items);
    await waitForRun(redis, "mask-write", { intervalMs: 100, timeoutMs: 90_000 });
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.worker.close()));
    await ctx?.close();
    await redis?.quit();
    process.off("unhandledRejection", recordUnhandled);
  });

  it("no rejection goes unhandled: the worker process would have lived", () => {
    assert.deepEqual(
      unhandled.map((r) => (r instanceof Error ? r.message : String(r))),
      [],
    );
  });

  it("a full disk is retried, then fails the image at mask with the path and the cause", async () => {
    const img = (await runImages(redis, "mask-write", outDir)).get("chelsea.jpg");
    assert.ok(img);
    assert.equal(img.failedStage, "mask");
    assert.equal(img.reason, `${join(outDir, img.outPrefix, "mask-bedrock.png")}: no space left on the device`);
    const record = (await new RunState(redis).failures("mask-write", 10)).find((r) => r.imageId === img.imageId);
    assert.equal(record?.attempts, 2, "transient: both attempts spent");
    assert.equal(failedWrites.filter((w) => w.startsWith("ENOSPC ")).length, 2, "each attempt reached the failing write");
  });

  it("no permission fails the image at once, naming the path (not retried)", async () => {
    const img = (await runImages(redis, "mask-write", outDir)).get("coffee.jpg");
    assert.ok(img);
    assert.equal(img.failedStage, "mask");
    assert.equal(img.reason, `out: ${join(outDir, img.outPrefix, "mask.png")}: permission denied`);
    const record = (await new RunState(redis).failures("mask-write", 10)).find((r) => r.imageId === img.imageId);
    assert.equal(record?.attempts, 1);
    assert.deepEqual(
      failedWrites.filter((w) => w.startsWith("EACCES ")),
      [`EACCES ${img.outPrefix}/mask.png`],
    );
  });

  it("the worker went on: the other image finished whole", async () => {
    const img = (await runImages(redis, "mask-write", outDir)).get("rocket.jpg");
    assert.ok(img);
    assert.equal(img.failedStage, undefined, img.reason);
    assert.ok(img.done.includes("finalize") && img.finished);
    const files = (await readdir(join(outDir, img.outPrefix))).sort();
    for (const f of ["cutout.png", "manifest.json", "mask-bedrock.png", "mask.json", "mask.png"]) assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
  });

  it("no temporary .partial file stays in the output folder, and no failed file was written", async () => {
    const all = (await readdir(outDir, { recursive: true })).map(String);
    assert.deepEqual(
      all.filter((f) => f.endsWith(".partial")),
      [],
    );
    assert.deepEqual(
      all.filter((f) => /^chelsea-[0-9a-f]+\/mask-bedrock\.png$/.test(f) || /^coffee-[0-9a-f]+\/mask\.png$/.test(f)),
      [],
    );
  });
});
