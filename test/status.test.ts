/**
 * `status`: a finished run's rate and elapsed time stop at its last finished image (they do not
 * shrink as the clock runs on), an unknown run is one line, and `status --wait` serves its
 * metrics on the host given by --metrics-host.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { summarize } from "../src/runs/status.js";
import { keyPrefix, stages } from "../src/pipeline/queues.js";
import { RunState, type RunProgress } from "../src/runs/run-state.js";
import { freshRedis, runMaskfleet } from "./helpers.js";

const noQueues = Object.fromEntries(stages.map((s) => [s, {}])) as Parameters<typeof summarize>[4];

function progress(o: Partial<RunProgress>): RunProgress {
  return { images: 0, results: 0, detect: 0, mask: 0, finalize: 0, resultsDone: 0, resultsFailed: 0, resultsNotAttempted: 0, finished: 0, ok: 0, failed: 0, review: 0, ...o };
}

describe("status", () => {
  it("a finished run's elapsed time and images/min end at its last finished image", () => {
    const createdAt = Date.now() - 3_600_000; // created an hour ago, done within two minutes
    const p = progress({ images: 4, finished: 4, ok: 3, failed: 1, detect: 4, mask: 3, finalize: 3 });
    const s = summarize("done", { createdAt, listing: false, lastFinishAt: createdAt + 120_000, queuePrefix: keyPrefix }, p, [], noQueues);
    assert.equal(s.finished, 4);
    assert.equal(s.elapsedSeconds, 120);
    assert.equal(s.imagesPerMin, 2);
    assert.equal(s.etaSeconds, 0);

    // Still running: the clock is now.
    const running = summarize("running", { createdAt, listing: false, lastFinishAt: createdAt + 120_000, queuePrefix: keyPrefix }, { ...p, images: 5 }, [], noQueues);
    assert.ok(Math.abs(running.elapsedSeconds - 3600) < 5, String(running.elapsedSeconds));
    assert.ok(running.imagesPerMin !== null && Math.abs(running.imagesPerMin - 4 / 60) < 0.01, String(running.imagesPerMin));

    // While a producer is still adding inputs the run is not done, whatever the counts say, and has no ETA.
    const listing = summarize("listing", { createdAt, listing: true, lastFinishAt: createdAt + 120_000, queuePrefix: keyPrefix }, p, [], noQueues);
    assert.ok(Math.abs(listing.elapsedSeconds - 3600) < 5);
    assert.equal(listing.etaSeconds, null);
    assert.equal(listing.listing, true);
  });

  it("status of a finished run through the CLI; an unknown run is one line; --metrics-host", async () => {
    const url = await freshRedis(12);
    const redis = new Redis(url);
    try {
      const state = new RunState(redis);
      const createdAt = Date.now() - 7_200_000;
      await state.register(
        "old-run",
        ["0011223344556677", "8899aabbccddeeff"].map((imageId) => ({ imageId, genTotal: 0 })),
      );
      for (const id of ["0011223344556677", "8899aabbccddeeff"]) {
        assert.equal(await state.finished("old-run", id, { outcome: "ok", stage: "finalize", name: `${id}.jpg`, failedResults: 0, causes: [] }), true);
        assert.equal(await state.finished("old-run", id, { outcome: "ok", stage: "finalize", name: `${id}.jpg`, failedResults: 0, causes: [] }), false, "an image finishes once");
      }
      // Created two hours ago, its last image finished a minute later.
      await redis.hset(`${keyPrefix}:run:old-run`, "createdAt", String(createdAt), "lastFinishAt", String(createdAt + 60_000));

      const json = await runMaskfleet(["status", "old-run", "--json", "--redis", url]);
      assert.equal(json.code, 0, json.stderr);
      const s = JSON.parse(json.stdout) as { finished: number; imagesPerMin: number; elapsedSeconds: number };
      assert.deepEqual([s.finished, s.imagesPerMin, s.elapsedSeconds], [2, 2, 60]);
      const text = await runMaskfleet(["status", "old-run", "--redis", url]);
      assert.match(text.stdout, /^ {2}2\.0 images\/min, elapsed 1m00s, ETA 0s$/m);

      for (const args of [
        ["status", "nosuchrun"],
        ["status", "nosuchrun", "--wait"],
        ["status", "nosuchrun", "--json"],
      ]) {
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
