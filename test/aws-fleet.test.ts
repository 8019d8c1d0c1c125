/**
 * The cloud path end to end on loopback: S3 in and out, Titan through the real SDK against a
 * stand-in that throttles above a known rate, blocks one prompt and fails its first requests,
 * with generate pools in two separate worker processes under one global rate limit.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { acceptedPerKey, acceptedRate, runAwsFleet } from "./scenarios/aws-fleet.js";
import { freshRedis, tinyModels } from "./helpers.js";

describe("AWS backends end to end (stand-ins)", () => {
  it("every result exactly once under throttling, the filtered prompt recorded, 500s retried, the rate held", async () => {
    const redisUrl = await freshRedis(6);
    const models = await tinyModels();
    const prompts = ["a studio backdrop", "a forbidden beach", "a marble counter"];
    const seeds = { from: 1, to: 4 };
    const images = 6;
    const run = await runAwsFleet({
      redisUrl,
      samModel: models.sam,
      images,
      prompts,
      seeds,
      rate: "8/s",
      generateWorkers: 2,
      generateConcurrency: 4,
      bedrock: { throttleAbovePerSecond: 10, blockPrompts: ["forbidden"], failFirst: 3 },
    });
    const { requests, status, manifests } = run;
    const expected = images * prompts.length * 4;

    // The run finished; no image failed as a whole (one prompt of each is filtered, the rest succeed).
    assert.equal(status.finished, images, run.workerLogs.join(""));
    assert.equal(status.failed, 0);
    assert.equal(manifests.length, images);
    for (const m of manifests) {
      assert.equal(m.results.length, prompts.length * 4);
      for (const r of m.results) {
        if (r.prompt.includes("forbidden")) {
          assert.equal(r.status, "failed");
          assert.match(r.reason ?? "", /content filters/);
        } else {
          assert.equal(r.status, "ok", JSON.stringify(r));
        }
      }
    }

    // 500s were retried: the first requests failed, yet every allowed (image, prompt, seed) got one answer.
    assert.deepEqual(requests.slice(0, 3).map((r) => r.status), [500, 500, 500]);
    const accepted = acceptedPerKey(requests);
    assert.equal(accepted.size, expected - images * 4, "one accepted request per allowed (image, prompt, seed)");
    assert.ok([...accepted.values()].every((n) => n === 1), "no result was paid for twice");
    // The filtered prompt was asked once per (image, seed): recorded, never retried.
    const filtered = requests.filter((r) => r.prompt?.includes("forbidden") && r.status === 400);
    assert.equal(filtered.length, images * 4);

    // The fleet-wide limiter held across the two worker processes.
    assert.ok(acceptedRate(requests) <= 8 * 1.1, `accepted ${acceptedRate(requests).toFixed(2)}/s with the rate set to 8/s`);

    // Outputs: every result and the per-image files are in the output bucket, written once each.
    const puts = run.s3.requests.filter((r) => r.op === "PutObject" && r.bucket === "out-bucket" && r.key.includes("/results/"));
    assert.equal(puts.length, expected - images * 4);
    assert.equal(new Set(puts.map((p) => p.key)).size, puts.length);
  });
});
