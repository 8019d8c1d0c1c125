/**
 * Shutdown: a fleet closing with a job in flight waits out the grace period, then hands the job
 * back; a later worker picks it up once its lock lapses and completes it exactly once.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveConfig } from "../src/config/config.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { findInputs } from "../src/producer/inputs.js";
import { waitForRun } from "../src/runs/status.js";
import { startFleet } from "../src/fleet/fleet.js";
import { startBedrockStandIn } from "./standins/bedrock.js";
import { standInCredentials, startTitanControl } from "./scenarios/aws-fleet.js";
import { freshRedis, repoRoot, scratchDir, tinyModels } from "./helpers.js";

describe("shutdown", () => {
  it("hands an in-flight job back after the grace period; it completes once, later, elsewhere", async () => {
    Object.assign(process.env, standInCredentials);
    const redisUrl = await freshRedis(9);
    const models = await tinyModels();
    // The service answers after 2.5 s: the first fleet is told to stop while the request is in flight.
    const bedrock = await startBedrockStandIn({ latencyMs: 2500 });
    // Nothing in-process asks the control plane; should anything, it must be a stand-in.
    const control = await startTitanControl();
    const config = resolveConfig({
      target: "auto",
      samModel: models.sam,
      generator: "titan",
      prompts: ["a studio backdrop"],
      seeds: { from: 3, to: 3 },
      out: await scratchDir("shutdown-out"),
      redisUrl,
      bedrockEndpoint: bedrock.endpoint,
      shutdownGraceMs: 300,
      lockDurationMs: 1500,
      // No limiter, as before the adaptive rate: the timing above is the request's alone.
      rate: "unlimited",
    });
    const first = startFleet(config, ["detect", "mask", "generate", "finalize"]);
    let second: ReturnType<typeof startFleet> | undefined;
    try {
      const items = await findInputs([join(repoRoot, "samples/photos/chelsea.jpg")], { region: config.region });
      await enqueueImages(first.ctx.redis, config, "shutdown", items);
      while (bedrock.requests.length === 0) await new Promise((r) => setTimeout(r, 50));
      const t0 = Date.now();
      await first.close();
      const closeMs = Date.now() - t0;
      assert.ok(closeMs < 1500, `close took ${closeMs} ms with a 300 ms grace period`);

      second = startFleet(config, ["generate", "finalize"]);
      const status = await waitForRun(second.ctx.redis, "shutdown", { intervalMs: 100, timeoutMs: 30_000 });
      assert.equal(status.succeeded, 1);
      // The handed-back job ran again (asking again, or finding the result the first request left):
      // one result file, one manifest entry, complete.
      assert.ok(bedrock.requests.length >= 1 && bedrock.requests.length <= 2, `${bedrock.requests.length} requests`);
      const [prefix] = await readdir(config.out);
      assert.ok(prefix);
      assert.equal((await readdir(join(config.out, prefix, "results"))).length, 1);
      const manifest = JSON.parse(await readFile(join(config.out, prefix, "manifest.json"), "utf8"));
      assert.deepEqual(
        manifest.results.map((r: { status: string; seed: number }) => [r.status, r.seed]),
        [["ok", 3]],
      );
    } finally {
      await first.close();
      await second?.close();
      await bedrock.close();
      await control.close();
    }
  });
});
