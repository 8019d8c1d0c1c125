/**
 * The fleet under faults, every pool in its own `maskfleet worker` processes, on a throw-away
 * redis-server (test/scenarios/redis-server.ts), S3 and Bedrock stand-ins:
 * - chaos: a catalog run while worker processes are SIGKILLed every few seconds (and replaced)
 *   and Redis crashes and restarts once: every image complete and whole, the run consistent, and
 *   no result received twice (test/scenarios/chaos.ts);
 * - SIGTERM under load: workers exit 0 within the grace period, finishing (or, past the grace
 *   period, handing back) their jobs; fresh workers complete the run, nothing lost or doubled.
 *
 * MASKFLEET_CHAOS_IMAGES (default 200) sizes the chaos run; MASKFLEET_CHAOS_SEED replays a kill
 * schedule. benchmarks/chaos.ts runs the same with and without faults and compares.
 */
import { describe, it } from "node:test";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import assert from "node:assert/strict";
import { stages, type Stage } from "../src/pipeline/queues.js";
import { waitForRun, runStatus } from "../src/runs/status.js";
import { s3Client } from "../src/storage/s3.js";
import { until } from "./helpers.js";
import type { StandInRequest } from "./standins/bedrock.js";
import {
  assertNothingLost,
  catalogConfig,
  deliveryReport,
  enqueueCatalog,
  outRoot,
  runChaos,
  startChaosEnv,
  uploadSmallPhotos,
  verifyOutputs,
  WorkerSet,
  type ChaosEnv,
} from "./scenarios/chaos.js";

const chaosImages = Number(process.env.MASKFLEET_CHAOS_IMAGES ?? 200);
const chaosSeed = process.env.MASKFLEET_CHAOS_SEED ? Number(process.env.MASKFLEET_CHAOS_SEED) : undefined;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("chaos: workers SIGKILLed, Redis crashed, mid-run (separate processes, stand-ins)", () => {
  it(`${chaosImages} images x 2 seeds: every output complete and whole, the run consistent, no result received twice`, async (t) => {
    const r = await runChaos({ images: chaosImages, faults: true, seed: chaosSeed, onEvent: (line) => t.diagnostic(line) });
    const d = r.delivery;
    const figures =
      `images ${r.images}, kills ${r.kills.length} (${stages.map((s) => `${s} ${r.kills.filter((k) => k.stage === s).length}`).join(", ")}), ` +
      `Redis restarts ${r.redisRestarts}, wall ${(r.wallMs / 1000).toFixed(1)} s, processes ${r.processesStarted}, ` +
      `generator calls counted ${r.report.generator.calls}, Bedrock requests ${r.requests.length}: delivered ${d.delivered} for ${d.keys} keys, re-asked after the receiver was killed ${d.afterReceiverKilled}, ` +
      `re-asked after a live delivery ${d.violations.length}, answered but not delivered ${d.undelivered}, seed ${r.seed}`;
    t.diagnostic(figures);

    // The faults happened: every stage lost a process, Redis crashed once.
    assert.equal(r.redisRestarts, 1, "Redis was crashed and restarted once");
    for (const stage of stages)
      assert.ok(
        r.kills.some((k) => k.stage === stage),
        `a ${stage} worker was SIGKILLed (${figures})`,
      );

    // Nothing lost, nothing partial, the run consistent.
    assertNothingLost(r, chaosImages, 2, figures);

    // The run report agrees: every image and result ok, no failure; one generator call counted per
    // result made (a worker killed between storing a result and counting it leaves one uncounted),
    // never more than the results the stand-in delivered.
    const rep = r.report;
    assert.deepEqual(rep.images, { total: chaosImages, finished: chaosImages, ok: chaosImages, failed: 0, review: 0, inProgress: 0 });
    assert.deepEqual(rep.results, { ok: chaosImages * 2, failed: 0, pending: 0, notAttempted: 0 });
    assert.deepEqual(rep.failures, { images: [], results: [] });
    for (const stage of stages) assert.ok(rep.durations[stage].n > 0, `${stage} durations`);
    const generateKills = r.kills.filter((k) => k.stage === "generate").length;
    assert.ok(rep.generator.calls >= chaosImages * 2 - generateKills && rep.generator.calls <= d.delivered, `generator calls ${rep.generator.calls} (${figures})`);
    assert.deepEqual([rep.generator.throttles, rep.generator.rejected], [0, 0]);
    assert.ok(rep.imagesPerMin !== null && rep.imagesPerMin > 0);

    // Every (image, prompt, seed) was received; none was asked for again after a live worker received it.
    assert.equal(d.keys, chaosImages * 2, "a delivered result for every (image, prompt, seed)");
    assert.deepEqual(d.violations, [], figures);
    assert.equal(d.delivered, d.keys + d.afterReceiverKilled, "beyond one per key, only re-requests after the receiver was killed");
    for (const [key, n] of d.perKey) assert.ok(n >= 1 && n <= 1 + r.kills.filter((k) => k.stage === "generate").length, `${key}: ${n} deliveries`);
  });

  it("the delivery check flags a result asked for again after a live worker received it", () => {
    const rec = (at: number, app: string, delivered: boolean, status = 200): StandInRequest => ({
      at,
      model: "amazon.titan-image-generator-v2:0",
      status,
      delivered,
      ...(delivered && { deliveredAt: at + 30 }),
      userAgent: `aws-sdk-js/3 ua/2.1 os/linux app/${app}`,
      imageHash: "abc",
      prompt: "p",
      seed: 1,
    });
    const killed = [{ id: "mf-generate-1", stage: "generate" as Stage, signal: "SIGKILL" as const, at: 1100 }];
    // Received by a worker killed before the retry: allowed (counted), not a violation.
    const ok = deliveryReport([rec(1000, "mf-generate-1", true), rec(1200, "mf-generate-2", false), rec(1500, "mf-generate-2", true)], killed);
    assert.deepEqual([ok.keys, ok.delivered, ok.duplicates, ok.afterReceiverKilled, ok.undelivered, ok.violations.length], [1, 2, 1, 1, 1, 0]);
    // Received by a worker that lived on (or was killed only after the retry): a violation.
    assert.equal(deliveryReport([rec(1000, "mf-generate-3", true), rec(1500, "mf-generate-2", true)], killed).violations.length, 1);
    assert.equal(deliveryReport([rec(1000, "mf-generate-1", true), rec(1050, "mf-generate-2", true)], killed).violations.length, 1);
  });
});

interface Load {
  env: ChaosEnv;
  workers: WorkerSet;
  images: number;
}

/** An env, `images` photos enqueued as run "load" (1 prompt x 2 seeds), and one process per pool (two for generate). */
async function startLoad(name: string, o: { images: number; latencyMs: number; graceMs: number; lockMs: number }): Promise<Load> {
  const env = await startChaosEnv(name, { latencyMs: o.latencyMs });
  const workers = new WorkerSet(env, {
    MASKFLEET_SHUTDOWN_GRACE_MS: String(o.graceMs),
    MASKFLEET_LOCK_DURATION_MS: String(o.lockMs),
    MASKFLEET_ATTEMPTS: "4",
  });
  try {
    await uploadSmallPhotos(env.s3, o.images);
    for (const stage of stages) workers.start(stage, stage === "generate" ? 4 : 2);
    workers.start("generate", 4);
    await Promise.all(workers.all.map((w) => w.ready));
    await enqueueCatalog(env, catalogConfig(env, { prompts: ["a studio backdrop"], seeds: { from: 1, to: 2 } }), "load");
    return { env, workers, images: o.images };
  } catch (err) {
    await workers.stopAll(5000);
    await env.close();
    throw err;
  }
}

/** SIGTERM every worker at once: each must exit 0 on its own within `withinMs`; returns the exits, a line. */
async function terminateAll(workers: WorkerSet, withinMs: number): Promise<string> {
  const live = workers.live();
  const sentAt = Date.now();
  for (const w of live) workers.signal(w, "SIGTERM");
  const exits = await Promise.all(
    live.map(async (w) => {
      const timer = setTimeout(() => w.child.kill("SIGKILL"), 60_000);
      const e = await w.exited;
      clearTimeout(timer);
      return { w, code: e.code, signal: e.signal, ms: e.at - sentAt };
    }),
  );
  for (const e of exits) {
    assert.equal(e.signal, null, `${e.w.id} exited on its own, not killed`);
    assert.equal(e.code, 0, `${e.w.id} exit code\n${e.w.stderr}`);
    assert.ok(e.ms < withinMs, `${e.w.id} took ${e.ms} ms, expected under ${withinMs} ms`);
  }
  return exits.map((e) => `${e.w.id} ${e.code} in ${e.ms} ms`).join(", ");
}

/** Fresh workers finish the run: every image ok and whole, exactly one delivered result per (image, prompt, seed). */
async function finishWithFreshWorkers(load: Load, inFlight: StandInRequest[]): Promise<void> {
  const { env, workers } = load;
  for (const stage of stages) workers.start(stage, stage === "generate" ? 4 : 2);
  await waitForRun(env.conn, "load", { intervalMs: 100, timeoutMs: 120_000 });
  const verified = await verifyOutputs(env, "load", { results: 2 });
  assert.deepEqual(verified.problems, [], workers.logs());
  const d = deliveryReport(env.bedrock.requests, workers.signals);
  assert.equal(d.keys, load.images * 2, "every result was generated");
  assert.equal(d.duplicates, 0, `no kills: no result delivered twice (${JSON.stringify(d.violations)})`);
  for (const [key, n] of d.perKey) assert.equal(n, 1, key);
  // A job handed back mid-request was asked for again, once.
  for (const r of inFlight.filter((x) => !x.delivered)) {
    const key = `${r.imageHash}|${r.prompt}|${r.seed}`;
    assert.equal(d.perKey.get(key), 1, `${key}: handed back, then generated once`);
  }
}

describe("SIGTERM under load (separate processes, stand-ins)", () => {
  it("in-flight jobs finish within the grace period, every worker exits 0; fresh workers complete the run, nothing lost or doubled", async (t) => {
    const graceMs = 8000;
    // Every Bedrock answer takes 1.5 s: jobs are in flight at SIGTERM and can finish within the grace period.
    const load = await startLoad("sigterm-redis", { images: 24, latencyMs: 1500, graceMs, lockMs: 3000 });
    const { env, workers } = load;
    try {
      // Mid-run: some results delivered, several requests in flight at the service.
      await until(
        "generate requests in flight",
        () => env.bedrock.requests.filter((r) => r.delivered).length >= 4 && env.bedrock.requests.filter((r) => !r.delivered).length >= 4,
        60_000,
      );
      const inFlight = env.bedrock.requests.filter((r) => !r.delivered);
      const exits = await terminateAll(workers, graceMs);
      t.diagnostic(`SIGTERM with ${inFlight.length} Bedrock requests in flight; exits: ${exits}`);
      // The requests in flight at SIGTERM were waited for, not dropped.
      assert.ok(inFlight.length > 0);
      for (const r of inFlight) assert.ok(r.delivered, `in flight at SIGTERM, answered at ${r.deliveredAt ?? "never"}: delivered before the worker exited`);
      const mid = await runStatus(env.conn, "load", false);
      assert.ok(mid.finished < mid.total, `work left for the fresh workers (${mid.finished}/${mid.total})`);
      await finishWithFreshWorkers(load, inFlight);

      // The output checks can fail: a truncated result, an empty mask and a missing contact sheet are found.
      const bucketKey = (k: string) => k.slice(outRoot.replace("s3://out-bucket/", "").length);
      const results = [...new Set(env.s3.requests.filter((r) => r.op === "PutObject" && r.key.includes("/results/")).map((r) => r.key))];
      const [truncated, other] = [results[0] as string, results.find((k) => k.split("/results/")[0] !== results[0]?.split("/results/")[0]) as string];
      const whole = env.s3.getObject("out-bucket", truncated)?.body as Buffer;
      env.s3.putObject("out-bucket", truncated, whole.subarray(0, whole.length - 100), "image/png");
      env.s3.putObject("out-bucket", truncated.replace(/\/results\/.*$/, "/mask.png"), Buffer.alloc(0), "image/png");
      const sheet = other.replace(/\/results\/.*$/, "/contact-sheet.jpg");
      await s3Client({ region: "us-east-1", endpoints: { s3: env.s3.endpoint } }).send(new DeleteObjectCommand({ Bucket: "out-bucket", Key: sheet }));
      const broken = (await verifyOutputs(env, "load", { results: 2 })).problems;
      const found = (re: RegExp) =>
        assert.ok(
          broken.some((p) => re.test(p)),
          `${re} in:\n${broken.join("\n")}`,
        );
      found(new RegExp(`${escape(bucketKey(truncated).split("/").slice(1).join("/"))} does not decode`));
      found(new RegExp(`${escape(bucketKey(truncated).split("/")[0] as string)}\\): mask\\.png does not decode`));
      found(new RegExp(`${escape(bucketKey(sheet).split("/")[0] as string)}\\): no contact-sheet\\.jpg`));
    } finally {
      await workers.stopAll(10_000);
      await env.close();
    }
  });

  it("jobs longer than the grace period are handed back: workers exit 0 right after it; fresh workers redo them once", async (t) => {
    const graceMs = 500;
    // Every Bedrock answer takes 2.5 s: at SIGTERM the generate jobs cannot finish within the grace period.
    const load = await startLoad("sigterm-handback-redis", { images: 8, latencyMs: 2500, graceMs, lockMs: 2000 });
    const { env, workers } = load;
    try {
      await until("generate requests in flight", () => env.bedrock.requests.length >= 4, 60_000);
      const inFlight = env.bedrock.requests.filter((r) => !r.delivered);
      const exits = await terminateAll(workers, graceMs + 2000);
      t.diagnostic(`SIGTERM with ${inFlight.length} Bedrock requests in flight; exits: ${exits}`);
      assert.ok(inFlight.length > 0);
      await finishWithFreshWorkers(load, inFlight);
      // Handed back, not finished: their answers came after the workers were gone.
      assert.ok(
        inFlight.every((r) => r.status !== 0 && !r.delivered),
        "the requests in flight at SIGTERM were abandoned at exit",
      );
    } finally {
      await workers.stopAll(10_000);
      await env.close();
    }
  });
});
