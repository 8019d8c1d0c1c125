/**
 * `status`: a finished run's rate and elapsed time stop at its last finished image (they do not
 * shrink as the clock runs on), an unknown run is one line, and `status --wait` serves its
 * metrics on the host given by --metrics-host.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { summarize } from "../producer/status.js";
import { keyPrefix, stages } from "../shared/queues.js";
import { RunState, type ImageRecord } from "../shared/run-state.js";
import { freshRedis, runMaskfleet } from "./helpers.js";

const noQueues = Object.fromEntries(stages.map((s) => [s, {}])) as Parameters<typeof summarize>[3];

function image(id: string, o: Partial<ImageRecord>): ImageRecord {
  return { imageId: id, name: `${id}.jpg`, outPrefix: id, genTotal: 1, genDone: 1, doneAt: {}, ...o };
}

describe("status", () => {
  it("a finished run's elapsed time and images/min end at its last finished image", () => {
    const createdAt = Date.now() - 3_600_000; // created an hour ago, done within two minutes
    const images = [
      image("a", { doneAt: { detect: createdAt + 5_000, finalize: createdAt + 30_000 } }),
      image("b", { doneAt: { finalize: createdAt + 60_000 } }),
      image("c", { doneAt: { finalize: createdAt + 90_000 } }),
      image("d", { doneAt: { detect: createdAt + 2_000 }, failedStage: "mask", reason: "boom", failedAt: createdAt + 120_000 }),
    ];
    const s = summarize("done", createdAt, images, noQueues);
    assert.equal(s.finished, 4);
    assert.equal(s.elapsedSeconds, 120);
    assert.equal(s.imagesPerMin, 2);
    assert.equal(s.etaSeconds, 0);

    // Still running: the clock is now.
    const running = summarize("running", createdAt, [...images, image("e", {})], noQueues);
    assert.ok(Math.abs(running.elapsedSeconds - 3600) < 5, String(running.elapsedSeconds));
    assert.ok(running.imagesPerMin !== null && Math.abs(running.imagesPerMin - 4 / 60) < 0.01, String(running.imagesPerMin));
  });

  it("status of a finished run through the CLI; an unknown run is one line; --metrics-host", async () => {
    const url = await freshRedis(12);
    const redis = new Redis(url);
    try {
      const state = new RunState(redis);
      const createdAt = Date.now() - 7_200_000;
      for (const id of ["0011223344556677", "8899aabbccddeeff"]) {
        await state.register("old-run", { imageId: id, name: `${id}.jpg`, outPrefix: id, genTotal: 0 });
        await state.stageDone(id, "finalize");
      }
      await redis.hset(`${keyPrefix}:run:old-run`, "createdAt", String(createdAt));
      await redis.hset(`${keyPrefix}:img:0011223344556677`, "finalizeAt", String(createdAt + 30_000));
      await redis.hset(`${keyPrefix}:img:8899aabbccddeeff`, "finalizeAt", String(createdAt + 60_000));

      const json = await runMaskfleet(["status", "old-run", "--json", "--redis", url]);
      assert.equal(json.code, 0, json.stderr);
      const s = JSON.parse(json.stdout) as { finished: number; imagesPerMin: number; elapsedSeconds: number };
      assert.deepEqual([s.finished, s.imagesPerMin, s.elapsedSeconds], [2, 2, 60]);
      const text = await runMaskfleet(["status", "old-run", "--redis", url]);
      assert.match(text.stdout, /^ {2}2\.0 images\/min, elapsed 1m00s, ETA 0s$/m);

      for (const args of [["status", "nosuchrun"], ["status", "nosuchrun", "--wait"], ["status", "nosuchrun", "--json"]]) {
        const res = await runMaskfleet([...args, "--redis", url]);
        assert.equal(res.stderr, "maskfleet: run nosuchrun: no such run\n", args.join(" "));
        assert.equal(res.code, 1, args.join(" "));
        assert.equal(res.stdout, "");
      }

      const waited = await runMaskfleet(["status", "old-run", "--wait", "--metrics-host", "127.0.0.2", "--metrics-port", "0", "--redis", url]);
      assert.equal(waited.code, 0, waited.stderr);
      assert.match(waited.stderr, /^metrics on http:\/\/127\.0\.0\.2:\d+\/metrics$/m);
      assert.match(waited.stdout, /^run old-run: 2\/2 images finished/);
    } finally {
      redis.disconnect();
    }
  });
});
