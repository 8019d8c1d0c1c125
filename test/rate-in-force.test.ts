/**
 * The generator rate in force, as `report` and the metrics show it: none before any pool paced a
 * request; the adaptive rate once the fleet used it; a fixed --rate recorded by a generate pool
 * when it starts (and set on maskfleet_generate_rate_per_second). On a throw-away redis-server.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { resolveConfig } from "../src/config/config.js";
import { registry } from "../src/runtime/metrics.js";
import { fleetAdaptiveRate, formatRateInForce, rateInForce } from "../src/rate/rate-in-force.js";
import { createContext } from "../src/stages/context.js";
import { startPool } from "../src/fleet/pool.js";
import { until } from "./helpers.js";
import { startRedisServer, type RedisServer } from "./scenarios/redis-server.js";

let server: RedisServer;
let redis: Redis;

describe("the generator rate in force", () => {
  before(async () => {
    server = await startRedisServer("rate-in-force", { persistence: false });
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  after(async () => {
    redis.disconnect();
    await server.close();
  });

  it("none, then the adaptive rate the fleet found, then a fixed --rate a generate pool started with", async () => {
    assert.equal(await rateInForce(redis), null);
    assert.equal(formatRateInForce(null), "generator rate: none in force");

    const adaptive = fleetAdaptiveRate(redis);
    await Promise.all([adaptive.acquire(), adaptive.acquire()]);
    await adaptive.succeeded();
    const found = await rateInForce(redis);
    assert.equal(found?.mode, "adaptive");
    assert.ok(found && found.perSecond > 1, `the rate grew from 1/s after a success while callers waited: ${found?.perSecond}`);
    assert.match(formatRateInForce(found), /^generator rate: 1\.\d\d\/s \(adaptive, slow-start; 0 throttles, 0 cuts\)$/);

    const config = resolveConfig({ target: "auto", redisUrl: server.url, rate: "90/min" });
    const ctx = createContext(config, redis);
    const pool = startPool("generate", ctx, { concurrency: 1, onFatal: () => undefined });
    try {
      await until("the fixed rate is recorded", async () => (await rateInForce(redis))?.mode === "fixed", 5000);
      assert.deepEqual(await rateInForce(redis), { mode: "fixed", perSecond: 1.5 });
      const text = await registry.metrics();
      assert.match(text, /^maskfleet_generate_rate_per_second\{mode="fixed",pool="generate"\} 1\.5$/m);
    } finally {
      await pool.worker.close();
      await ctx.close();
    }
  });
});
