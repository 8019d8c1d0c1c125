/**
 * Run ids are checked in one place (src/pipeline/run-id.ts): a run id with ":" would reach another
 * run's Redis keys (`maskfleet:run:foo:images` is run foo's image set), an empty one used to dump
 * a ZodError. Every command that takes a run id refuses a bad one with one line and exit 2,
 * before Redis is touched; RunState and enqueueImages refuse it too, as a last guard.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Redis } from "ioredis";
import { enqueueImages, newRunId } from "../src/producer/enqueue.js";
import { resolveConfig } from "../src/config/config.js";
import { ConfigError } from "../src/runtime/errors.js";
import { RunState } from "../src/runs/run-state.js";
import { checkRunId, isValidRunId } from "../src/pipeline/run-id.js";
import { repoRoot, runMaskfleet } from "./helpers.js";
import { startRedisServer, type RedisServer } from "./scenarios/redis-server.js";

const photo = join(repoRoot, "samples", "photos", "coffee.jpg");
const oneLine = (stderr: string) => stderr.trim().split("\n");

describe("run ids", () => {
  it("accepts letters, digits, '.', '_', '-' (1-128, not starting with '-' or '.') and nothing else", () => {
    for (const ok of ["foo", "catalog-2026-11", "a", "A.b_c-d", "_x", "9", "x".repeat(128), newRunId()]) assert.equal(isValidRunId(ok), true, ok);
    for (const bad of ["", "foo:images", "a b", "-x", ".x", "..", "x".repeat(129), "a/b", "a*", "ü", "a\nb", "run:1"]) {
      assert.equal(isValidRunId(bad), false, JSON.stringify(bad));
    }
    assert.equal(checkRunId("catalog-2026-11"), "catalog-2026-11");
    assert.throws(
      () => checkRunId("foo:images"),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.message, 'run: "foo:images" is not a valid run id: use 1-128 letters, digits, ".", "_" or "-", not starting with "-" or "."');
        return true;
      },
    );
    // Shown as JSON (a newline stays one line) and cut short.
    assert.throws(() => checkRunId("a\nb"), { message: /^run: "a\\nb" is not/ });
    assert.throws(
      () => checkRunId("y".repeat(500)),
      (err: Error) => err.message.length < 200,
    );
  });

  describe("against Redis", () => {
    let server: RedisServer;
    let redis: Redis;

    before(async () => {
      server = await startRedisServer("run-id-redis", { persistence: false });
      redis = new Redis(server.url);
    });
    after(async () => {
      redis.disconnect();
      await server.close();
    });

    it("RunState and enqueueImages refuse a bad run id (the last guard)", async () => {
      await redis.flushdb();
      const state = new RunState(redis);
      await assert.rejects(state.register("foo:images", [{ imageId: "i1", genTotal: 1 }]), ConfigError);
      await assert.rejects(state.forget("foo:images"), ConfigError);
      await assert.rejects(state.runExists(""), ConfigError);
      const config = resolveConfig({ out: join(repoRoot, "test", ".tmp", "run-id-out"), redisUrl: server.url });
      await assert.rejects(enqueueImages(redis, config, "a:b", [{ path: photo, name: "coffee.jpg" }]), { message: /^run: "a:b" is not a valid run id/ });
      assert.deepEqual(await redis.keys("*"), []);
      // A good id still works.
      assert.deepEqual(await state.register("foo", [{ imageId: "i1", genTotal: 1 }]), ["new"]);
    });

    it("every command refuses a bad run id with one line and exit 2, and touches no key", async () => {
      await redis.flushdb();
      // Run foo with one image: its images are maskfleet:run:foo:images.
      await new RunState(redis).register("foo", [{ imageId: "img1", genTotal: 1 }]);
      const keysBefore = (await redis.keys("*")).sort();
      const r = ["--redis", server.url];
      const out = ["--out", join(repoRoot, "test", ".tmp", "run-id-out")];
      const cases: string[][] = [
        ["clean", "foo:images", "--force", ...r],
        ["report", "foo:images", ...r],
        ["retry", "foo:images", ...r],
        ["status", "foo:images", ...r],
        ["status", "", ...r],
        ["enqueue", photo, "--run", "foo:images", ...out, ...r],
        ["enqueue", photo, "--run", "", ...out, ...r],
        ["run", photo, "--run", "foo:images", "--no-progress", ...out, ...r],
      ];
      for (const args of cases) {
        const res = await runMaskfleet(args, { timeoutMs: 60_000 });
        const label = args.slice(0, 3).join(" ");
        assert.equal(res.code, 2, `${label}: ${res.stderr}`);
        assert.deepEqual(oneLine(res.stderr).length, 1, `${label}: ${res.stderr}`);
        assert.match(res.stderr, /^maskfleet: run: "(foo:images|)" is not a valid run id: use 1-128 letters, digits, "\.", "_" or "-", not starting with "-" or "\."\n$/, label);
        assert.doesNotMatch(res.stderr, /ZodError|at .*\.ts:\d+/);
        assert.equal(res.stdout, "", label);
      }
      // Run foo is as it was: clean 'foo:images' used to delete its image set.
      assert.deepEqual((await redis.keys("*")).sort(), keysBefore);
      assert.deepEqual(await redis.hkeys("maskfleet:run:foo:images"), ["img1"]);
    });
  });
});
