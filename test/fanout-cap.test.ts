/**
 * The fan-out of one image (prompts x seeds generate jobs under one finalize parent) is capped by
 * maxResultsPerImage (default 1,000), and prompts by the schema (1,000): `--seeds 0-10000000`
 * with 3 prompts used to run for minutes at GBs of memory, 3 x 100k built a flow that blocked
 * Redis. Refused at config time with the key named, and per manifest row with its own prompts.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { enqueueImages } from "../src/producer/enqueue.js";
import { configSchema, resolveConfig } from "../src/config/config.js";
import { ConfigError } from "../src/runtime/errors.js";
import { imageOptionsSchema } from "../src/config/image-options.js";
import { repoRoot, runMaskfleet, scratchDir } from "./helpers.js";
import { startRedisServer, type RedisServer } from "./scenarios/redis-server.js";

const photo = join(repoRoot, "samples", "photos", "coffee.jpg");
const photo2 = join(repoRoot, "samples", "photos", "chelsea.jpg");

describe("results per image are capped", () => {
  it("config: prompts x seeds over maxResultsPerImage is refused, naming the key", () => {
    assert.equal(resolveConfig({}).maxResultsPerImage, 1000);
    assert.throws(
      () => resolveConfig({ prompts: ["a", "b", "c"], seeds: "0-10000000" }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.message, "seeds: 3 prompts x 10,000,001 seeds = 30,000,003 results per image, over maxResultsPerImage (1,000)");
        return true;
      },
    );
    assert.throws(() => resolveConfig({ prompts: ["a", "b", "c"], seeds: "1-100000", generator: "stability" }), {
      message: "seeds: 3 prompts x 100,000 seeds = 300,000 results per image, over maxResultsPerImage (1,000)",
    });
    // One prompt, 1,001 seeds: just over.
    assert.throws(() => resolveConfig({ seeds: "0-1000" }), { message: "seeds: 1 prompt x 1,001 seeds = 1,001 results per image, over maxResultsPerImage (1,000)" });
    // At the cap, and a raised cap.
    assert.equal(resolveConfig({ prompts: ["a", "b"], seeds: "0-499" }).seeds.to, 499);
    assert.equal(resolveConfig({ prompts: ["a", "b", "c"], seeds: "0-9999", maxResultsPerImage: 30_000 }).maxResultsPerImage, 30_000);
    assert.throws(() => resolveConfig({ maxResultsPerImage: 0 }), { message: /^maxResultsPerImage: / });
    // The stability default seed range (1-1) counts too: 1,001 prompts are over the prompts cap first.
    const many = Array.from({ length: 1001 }, (_, i) => `p${i}`);
    assert.throws(() => resolveConfig({ prompts: many, maxResultsPerImage: 10_000 }), { message: /^prompts: .*1000/ });
    assert.equal(resolveConfig({ prompts: many.slice(0, 1000) }).prompts.length, 1000);
  });

  it("is not an image option: image ids do not change", () => {
    assert.ok("maxResultsPerImage" in configSchema.shape);
    assert.ok(!("maxResultsPerImage" in imageOptionsSchema.shape));
  });

  describe("CLI and manifests", () => {
    let server: RedisServer;
    let redis: Redis;
    let dir: string;

    before(async () => {
      server = await startRedisServer("fanout-redis", { persistence: false });
      redis = new Redis(server.url);
      dir = await scratchDir("fanout");
    });
    after(async () => {
      redis.disconnect();
      await server.close();
    });

    it("enqueue --seeds 0-10000000 with 3 prompts: one line, exit 2, at once, nothing enqueued", async () => {
      await redis.flushdb();
      const started = Date.now();
      const res = await runMaskfleet(["enqueue", photo, "--run", "big", "-p", "a", "b", "c", "--seeds", "0-10000000", "--out", join(dir, "out"), "--redis", server.url], {
        timeoutMs: 60_000,
      });
      assert.equal(res.code, 2, res.stderr);
      assert.equal(res.stderr, "maskfleet: seeds: 3 prompts x 10,000,001 seeds = 30,000,003 results per image, over maxResultsPerImage (1,000)\n");
      assert.ok(Date.now() - started < 30_000);
      assert.deepEqual(await redis.keys("*"), []);
    });

    it("--max-results-per-image raises the cap", async () => {
      await redis.flushdb();
      const base = ["enqueue", photo, "-p", "a", "b", "--seeds", "0-599", "--out", join(dir, "out"), "--redis", server.url];
      const refused = await runMaskfleet([...base, "--run", "r1"], { timeoutMs: 60_000 });
      assert.equal(refused.code, 2);
      assert.equal(refused.stderr, "maskfleet: seeds: 2 prompts x 600 seeds = 1,200 results per image, over maxResultsPerImage (1,000)\n");
      const ok = await runMaskfleet([...base, "--run", "r2", "--max-results-per-image", "1200"], { timeoutMs: 60_000 });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, "r2\n");
      assert.equal(await redis.hget("maskfleet:run:r2:progress", "results"), "1200", "one image of 1,200 results");
      const bad = await runMaskfleet([...base, "--run", "r3", "--max-results-per-image", "zero"], { timeoutMs: 60_000 });
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr, "maskfleet: option '--max-results-per-image <n>' argument 'zero' is invalid. expected a whole number 1-1000000, got zero\n(add --help for usage)\n");
    });

    it("a manifest row with its own prompts is checked too, before anything is enqueued", async () => {
      await redis.flushdb();
      const config = resolveConfig({ seeds: "0-399", out: join(dir, "out"), redisUrl: server.url }); // 1 prompt x 400: fine
      const rows = [
        { path: photo, name: "first.jpg" },
        { path: photo2, name: "second.jpg", prompts: ["a", "b", "c"] }, // 3 x 400 = 1,200
      ];
      await assert.rejects(enqueueImages(redis, config, "rows", rows), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.message, "second.jpg prompts: 3 prompts x 400 seeds = 1,200 results per image, over maxResultsPerImage (1,000)");
        return true;
      });
      assert.deepEqual(await redis.keys("*"), []);
      // The same rows through the CLI, from a .jsonl manifest.
      const manifest = join(dir, "rows.jsonl");
      await writeFile(manifest, rows.map((r) => JSON.stringify({ ...r, name: undefined })).join("\n") + "\n");
      const res = await runMaskfleet(["enqueue", manifest, "--run", "rows", "--seeds", "0-399", "--out", join(dir, "out"), "--redis", server.url], { timeoutMs: 60_000 });
      assert.equal(res.code, 2, res.stderr);
      assert.match(res.stderr, /^maskfleet: \S*chelsea\.jpg prompts: 3 prompts x 400 seeds = 1,200 results per image, over maxResultsPerImage \(1,000\)\n$/);
      assert.deepEqual(await redis.keys("*"), []);
      // Within the cap: both enqueued.
      const fine = await enqueueImages(redis, config, "rows", [rows[0] as (typeof rows)[0], { path: photo2, name: "second.jpg", prompts: ["a", "b"] }]);
      assert.equal(fine.added, 2);
    });
  });
});
