/**
 * A mask pool warms its segmenter up (loaded, run once on a small grey image) before it takes a
 * job, and the process reports ready (GET /ready) only once every pool has; a warm-up that fails
 * is logged and the pool takes jobs anyway. Real Redis (the test's own), tiny SAM graphs.
 */
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { resolveConfig, type Config, type ConfigInput } from "../src/config/config.js";
import { log } from "../src/runtime/log.js";
import { startMetricsServer, type MetricsServer } from "../src/runtime/metrics.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import { connect } from "../src/runtime/redis.js";
import { createContext, type WorkerContext } from "../src/stages/context.js";
import { startPool, type Pool } from "../src/fleet/pool.js";
import { makeTinySalient } from "./support/onnx/make-tiny-salient.js";
import { freshRedis, repoRoot, runImages, scratchDir, sleep, tinyModels, until } from "./helpers.js";

const photo = { path: join(repoRoot, "samples", "photos", "coffee.jpg"), name: "coffee.jpg" };

describe("warm-up before the mask pool takes jobs", () => {
  let redisUrl: string;
  let redis: Redis;
  let server: MetricsServer;
  let sam: string;
  let dir: string;
  let pools: Pool[] = [];
  let ctx: WorkerContext | undefined;
  /** Ends a gated warm-up, so that a failed test does not leave a job waiting on it. */
  let openGate: () => void = () => undefined;

  const ready = async () => {
    const res = await fetch(server.url.replace(/\/metrics$/, "/ready"));
    return `${res.status} ${(await res.text()).trim()}`;
  };
  const configWith = (overrides: ConfigInput): Config =>
    resolveConfig({ target: "auto", samModel: sam, out: join(dir, "out"), redisUrl, prompts: ["studio white background"], seeds: { from: 1, to: 1 }, attempts: 1, ...overrides });
  /** The detect pool (no warm-up) and the mask pool on `context`. */
  const startPools = (context: WorkerContext) => {
    ctx = context;
    pools = (["detect", "mask"] as const).map((stage) => startPool(stage, context, { concurrency: 1, onFatal: () => undefined }));
    return pools[1] as Pool;
  };

  before(async () => {
    redisUrl = await freshRedis(6);
    redis = connect(redisUrl);
    sam = (await tinyModels()).sam;
    dir = await scratchDir("warm-up");
    server = await startMetricsServer(0, "127.0.0.1");
  });

  afterEach(async () => {
    openGate();
    await Promise.all(pools.map((p) => p.worker.close()));
    await ctx?.close();
  });

  after(async () => {
    await server?.close();
    await redis?.quit();
  });

  it("takes no job until its segmenter has loaded and run; /ready says 503 until then, 200 after", async (t) => {
    assert.equal(await ready(), "200 ready", "a process without pools is ready");
    const info = t.mock.method(log, "info");
    const base = createContext(configWith({}), redis);
    // The warm-up's segmenter waits for the gate; the sizes of the images segmented, in order.
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const segmented: string[] = [];
    const gated: WorkerContext = {
      ...base,
      async segmenter(spec, refine, maskSelection) {
        await gate;
        const s = await base.segmenter(spec, refine, maskSelection);
        return {
          name: s.name,
          executionProvider: s.executionProvider,
          segment(image, boxes) {
            segmented.push(`${image.width}x${image.height}`);
            return s.segment(image, boxes);
          },
          close: () => s.close(),
        };
      },
    };
    const mask = startPools(gated);
    const taken: number[] = [];
    mask.worker.on("active", () => taken.push(Date.now()));
    assert.equal(await ready(), "503 warming up");

    await enqueueImages(redis, base.config, "warm", [photo]);
    const maskJobs = async () => Object.values(await base.queues.mask.getJobCounts("waiting", "active")).reduce((a, b) => a + b, 0);
    await until("the detect pool to queue the mask job", async () => (await maskJobs()) === 1, 30_000);
    await sleep(1500); // time enough for a pool that does not wait to take it
    assert.deepEqual(await base.queues.mask.getJobCounts("waiting", "active"), { waiting: 1, active: 0 });
    assert.equal(taken.length, 0, "no job taken during the warm-up");
    assert.deepEqual(segmented, []);
    assert.equal(await ready(), "503 warming up");

    const opened = Date.now();
    openGate();
    // The run does not finish without a generate pool: the mask job is done once its generate job waits.
    await until("the mask job to be done", async () => (await base.queues.generate.getJobCounts("waiting")).waiting === 1, 60_000);
    assert.equal(taken.length, 1);
    assert.ok(
      taken.every((at) => at >= opened),
      "taken after the warm-up",
    );
    assert.equal(segmented[0], "64x48", "the warm-up segmented its grey image first");
    assert.equal(segmented.length, 2, `then the photo: ${segmented.join(", ")}`);
    assert.equal(await ready(), "200 ready");
    const warmed = info.mock.calls.find((c) => c.arguments[1] === "warmed up");
    assert.ok(warmed, "the warm-up is logged");
    assert.equal((warmed.arguments[0] as { stage: string }).stage, "mask");
    assert.ok(Number.isFinite((warmed.arguments[0] as { ms: number }).ms), "with its time");
  });

  it("target auto with a salient model: the salient model and the SAM its refinement uses (none without it)", async () => {
    const salientModel = await makeTinySalient(dir, "rmbg");
    for (const salientRefine of [true, false]) {
      const base = createContext(configWith({ salientModel, salientRefine, refineMask: true, maskSelection: "best" }), redis);
      const asked: string[] = [];
      const predicted: string[] = [];
      startPools({
        ...base,
        segmenter(...args) {
          asked.push(JSON.stringify(["segmenter", ...args]));
          return base.segmenter(...args);
        },
        async salient(spec) {
          asked.push(JSON.stringify(["salient", spec]));
          const model = await base.salient(spec);
          return {
            name: model.name,
            executionProvider: model.executionProvider,
            predict(image) {
              predicted.push(`${image.width}x${image.height}`);
              return model.predict(image);
            },
            close: () => model.close(),
          };
        },
      });
      await until("the pools to start", async () => (await ready()) === "200 ready", 30_000);
      const expected = [["salient", salientModel], ...(salientRefine ? [["segmenter", sam, true, "best"]] : [])].map((a) => JSON.stringify(a));
      assert.deepEqual(asked, expected, `salientRefine ${salientRefine}`);
      assert.deepEqual(predicted, ["64x48"]);
      await Promise.all(pools.map((p) => p.worker.close()));
      await base.close();
      [pools, ctx] = [[], undefined];
    }
  });

  it("a warm-up that fails is one log line; the pool takes jobs anyway and they fail with the usual error", async (t) => {
    const warn = t.mock.method(log, "warn");
    const missing = join(dir, "no-such-sam");
    const context = createContext(configWith({ samModel: missing }), redis);
    startPools(context);
    await until("the pools to start", async () => (await ready()) === "200 ready", 30_000);
    const failed = warn.mock.calls.filter((c) => c.arguments[1] === "warm-up failed; taking jobs anyway");
    assert.equal(failed.length, 1);
    assert.match((failed[0]?.arguments[0] as { err: string }).err, /no-such-sam/);

    await enqueueImages(redis, context.config, "cold", [photo]);
    await waitForRun(redis, "cold", { intervalMs: 100, timeoutMs: 60_000 });
    const img = (await runImages(redis, "cold")).get("coffee.jpg");
    assert.equal(img?.failedStage, "mask");
    assert.match(img?.reason ?? "", /no-such-sam/);
  });
});
