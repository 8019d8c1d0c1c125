/**
 * `maskfleet run` works on its own run only: a run enqueued for the worker pools (shared queues)
 * stays waiting, untouched, while another `run` processes its own photos on its own queues; a
 * `run --run ID` of a run that belongs to the pools is refused; status, report and clean find a
 * `run`'s own queues, and clean removes them.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { enqueueImages } from "../src/producer/enqueue.js";
import { discoverInputs } from "../src/producer/discover.js";
import { resolveConfig } from "../src/config/config.js";
import { keyPrefix, openQueue, privateQueuePrefix } from "../src/pipeline/queues.js";
import { freshRedis, repoRoot, runMaskfleet, scratchDir, tinyModels, scanKeys } from "./helpers.js";

describe("maskfleet run keeps to its own run", () => {
  let redisUrl: string;
  let redis: Redis;
  let dir: string;
  let sam: string;

  before(async () => {
    redisUrl = await freshRedis(3);
    redis = new Redis(redisUrl);
    dir = await scratchDir("run-isolation");
    sam = (await tinyModels()).sam;
    for (const [sub, names] of [
      ["pools-in", ["chelsea.jpg", "coffee.jpg"]],
      ["run-in", ["astronaut.jpg"]],
    ] as const) {
      await mkdir(join(dir, sub), { recursive: true });
      for (const n of names) await copyFile(join(repoRoot, "samples", "photos", n), join(dir, sub, n));
    }
  });
  after(() => redis.disconnect());

  it("another run's waiting jobs are neither taken nor written; status, report and clean find the run's own queues", async () => {
    // A run for the worker pools, on the shared queues, with its own output folder: no worker is running.
    const poolsOut = join(dir, "pools-out");
    const poolsConfig = resolveConfig({ target: "auto", samModel: sam, out: poolsOut, redisUrl });
    await enqueueImages(redis, poolsConfig, "for-the-pools", discoverInputs([join(dir, "pools-in")]));
    const shared = openQueue("detect", redis);
    try {
      assert.equal(await shared.getWaitingCount(), 2);

      const runOut = join(dir, "run-out");
      const r = await runMaskfleet(["run", join(dir, "run-in"), "--run", "mine", "--target", "auto", "--sam-model", sam, "--out", runOut, "--redis", redisUrl, "--no-progress"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /run mine: 1\/1 images finished \(1 ok, 0 failed\)/);
      assert.equal((await readdir(runOut)).length, 1, "its own photo, in its own folder");

      assert.equal(await shared.getWaitingCount(), 2, "the pools' jobs are still waiting");
      await assert.rejects(readdir(poolsOut), /ENOENT/, "nothing was written for the other run");

      const own = await scanKeys(redis, `${privateQueuePrefix("mine")}:*`);
      assert.ok(own.length > 0, "the run's jobs lived on its own queues");
      const status = await runMaskfleet(["status", "mine", "--json", "--redis", redisUrl]);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(JSON.parse(status.stdout).succeeded, 1);
      const report = await runMaskfleet(["report", "mine", "--redis", redisUrl]);
      assert.equal(report.code, 0, report.stderr);
      const rep = JSON.parse(report.stdout) as { images: { ok: number }; durations: { detect: { n: number } } };
      assert.equal(rep.images.ok, 1);
      assert.equal(rep.durations.detect.n, 1, "the run's own detect job, timed");

      const clean = await runMaskfleet(["clean", "mine", "--redis", redisUrl]);
      assert.equal(clean.code, 0, clean.stderr);
      assert.deepEqual(await scanKeys(redis, `${privateQueuePrefix("mine")}:*`), [], "clean removes the run's own queues");
      assert.equal(await shared.getWaitingCount(), 2, "and nothing of the other run");
      assert.ok((await scanKeys(redis, `${keyPrefix}:run:for-the-pools*`)).length > 0);
    } finally {
      await shared.close();
    }
  });

  it("run --run of a run enqueued for the worker pools is refused in one line", async () => {
    const r = await runMaskfleet([
      "run",
      join(dir, "run-in"),
      "--run",
      "for-the-pools",
      "--target",
      "auto",
      "--sam-model",
      sam,
      "--out",
      join(dir, "x"),
      "--redis",
      redisUrl,
      "--no-progress",
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr.trim(),
      /^maskfleet: run: run for-the-pools was enqueued for the worker pools: follow it with `maskfleet status for-the-pools --wait`, or give `run` a new run id$/,
    );
  });
});
