/**
 * The fleet under faults, all on 127.0.0.1: a throw-away redis-server (AOF, fsync always), photos
 * in the S3 stand-in, every pool (detect, mask, generate, finalize) in separate
 * `maskfleet worker <stage>` processes, Titan through the real SDK against the Bedrock stand-in,
 * outputs to s3://out-bucket/bg/. While the run goes, a random worker process is SIGKILLed every
 * few seconds (and a replacement started), and Redis is crashed (SIGKILL) and restarted once.
 *
 * What it measures, for test/chaos.test.ts (asserts) and benchmarks/chaos.ts (reports):
 * - the run's status and every output of every image, decoded (verifyOutputs);
 * - per (image sent, prompt, seed), the 200s the Bedrock stand-in fully delivered, and whether
 *   any re-request followed a delivery to a worker that was still alive (deliveryReport).
 *
 * Each worker process sends its own AWS SDK app id (AWS_SDK_UA_APP_ID -> "app/<id>" in the
 * User-Agent), so the stand-in's records say which process received which answer. Generate
 * workers pass the lifecycle gate against a control-plane stand-in where Titan is Legacy, and run
 * with `--rate unlimited` (no limiter: throttles and queue pauses only, as these scenarios were made).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdir } from "node:fs/promises";
import { createServer, connect as tcpConnect, type Socket } from "node:net";
import { join } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { Redis } from "ioredis";
import sharp, { type Sharp } from "sharp";
import { resolveConfig, type Config } from "../../src/config/config.js";
import { enqueueImages } from "../../src/producer/enqueue.js";
import { findInputs } from "../../src/producer/inputs.js";
import { runReport, type RunReport } from "../../src/runs/report.js";
import { runStatus, waitForRun, type RunStatus } from "../../src/runs/status.js";
import { openQueues, stages, type Stage } from "../../src/pipeline/queues.js";
import { connect } from "../../src/runtime/redis.js";
import { RunState, type ImageRecord } from "../../src/runs/run-state.js";
import { s3Client } from "../../src/storage/s3.js";
import { startBedrockStandIn, type BedrockStandIn, type BedrockStandInOptions, type StandInRequest } from "../standins/bedrock.js";
import { startBedrockControlStandIn } from "../standins/bedrock-control.js";
import { startS3Server, type S3Server } from "../standins/s3-server.js";
import { cliEntry, repoRoot, sleep, tinyModels } from "../helpers.js";
import { standInCredentials, titanLegacyCatalog } from "./aws-fleet.js";
import { startRedisServer, type RedisServer, type RedisServerOptions } from "./redis-server.js";

export const outRoot = "s3://out-bucket/bg/";

/** Redis, S3 and Bedrock for one scenario, and the tiny SAM model. */
export interface ChaosEnv {
  redis: RedisServer;
  s3: S3Server;
  bedrock: BedrockStandIn;
  /** The Bedrock control plane's stand-in (Titan Legacy), for AWS_ENDPOINT_URL_BEDROCK. */
  controlEndpoint: string;
  samModel: string;
  /** The producer's (and the checks') connection; reconnects across Redis restarts. */
  conn: Redis;
  close(): Promise<void>;
}

/**
 * `where`: by default everything on 127.0.0.1; `host` puts the S3 and Bedrock stand-ins on another
 * address of this machine, and `redis` places the redis-server (test/scenarios/multihost.ts: on a
 * bridge, and in a network namespace of its own).
 */
export async function startChaosEnv(name: string, bedrock: BedrockStandInOptions, where: { host?: string; redis?: RedisServerOptions } = {}): Promise<ChaosEnv> {
  Object.assign(process.env, standInCredentials);
  const models = await tinyModels();
  const redis = await startRedisServer(name, where.redis);
  const s3 = await startS3Server(where.host);
  const stand = await startBedrockStandIn({ maxRequests: 100_000, host: where.host, ...bedrock });
  const control = await startBedrockControlStandIn({ catalog: titanLegacyCatalog });
  // The control stand-in listens on 127.0.0.1 only: on another address, a TCP relay to it.
  const relay = where.host ? await tcpRelay(where.host, control.endpoint) : undefined;
  s3.createBucket("in-bucket");
  s3.createBucket("out-bucket");
  const conn = connect(redis.url);
  conn.on("error", () => undefined); // reconnects on its own while Redis restarts
  return {
    redis,
    s3,
    bedrock: stand,
    controlEndpoint: relay?.endpoint ?? control.endpoint,
    samModel: models.sam,
    conn,
    async close() {
      conn.disconnect();
      await relay?.close();
      await control.close();
      await stand.close();
      await s3.close();
      await redis.close();
    },
  };
}

/** A TCP relay on `host` (a free port) to the HTTP server at `target` (http://127.0.0.1:PORT). */
async function tcpRelay(host: string, target: string): Promise<{ endpoint: string; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.once("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("relay: no port");
  return {
    endpoint: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * `count` distinct small photos as S3 objects under in-bucket/catalog/: the samples, each scaled
 * to its own width (160 + i px), mirrored every other round; small so the run is fast.
 */
export async function uploadSmallPhotos(s3: S3Server, count: number): Promise<void> {
  const dir = join(repoRoot, "samples", "photos");
  const sources = (await readdir(dir)).filter((f) => f.endsWith(".jpg")).sort();
  const originals = new Map<string, Sharp>();
  for (const src of sources) originals.set(src, sharp(join(dir, src)));
  for (let i = 0; i < count; i++) {
    const src = sources[i % sources.length] as string;
    let img = (originals.get(src) as Sharp).clone().resize({ width: 160 + i });
    if (Math.floor(i / sources.length) % 2 === 1) img = img.flop();
    s3.putObject("in-bucket", `catalog/photo-${String(i).padStart(4, "0")}.jpg`, await img.jpeg({ quality: 85 }).toBuffer(), "image/jpeg");
  }
}

export interface CatalogOptions {
  prompts: string[];
  seeds: { from: number; to: number };
  attempts?: number;
}

/** The producer's config for a run of the catalog through Titan into s3://out-bucket/bg/. */
export function catalogConfig(env: ChaosEnv, o: CatalogOptions): Config {
  return resolveConfig({
    target: "auto",
    samModel: env.samModel,
    generator: "titan",
    modelId: "amazon.titan-image-generator-v2:0",
    prompts: o.prompts,
    seeds: o.seeds,
    out: outRoot,
    redisUrl: env.redis.url,
    s3Endpoint: env.s3.endpoint,
    bedrockEndpoint: env.bedrock.endpoint,
    attempts: o.attempts ?? 4,
    rate: "unlimited",
  });
}

export async function enqueueCatalog(env: ChaosEnv, config: Config, runId: string): Promise<number> {
  const items = await findInputs(["s3://in-bucket/catalog/"], { region: config.region, endpoints: { s3: env.s3.endpoint } });
  const summary = await enqueueImages(env.conn, config, runId, items);
  return summary.added;
}

export interface WorkerProcess {
  /** The AWS SDK app id this process sends ("mf-generate-3"). */
  id: string;
  stage: Stage;
  child: ChildProcess;
  startedAt: number;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Resolves when the worker printed that it started (its pool is taking jobs). */
  ready: Promise<void>;
  /** Where it serves its metrics, from its start line (once ready). */
  metricsUrl?: string;
  stderr: string;
}

/** Where and how one worker process runs, beyond the set's settings. */
export interface WorkerPlacement {
  /** A command prefix that execs the process, e.g. ["ip", "netns", "exec", "ns1"] (another "host"). */
  launcher?: string[];
  /** MASKFLEET_* settings for this process only. */
  env?: Record<string, string>;
}

export interface KillRecord {
  id: string;
  stage: Stage;
  signal: NodeJS.Signals;
  /** Date.now() when the signal was sent. */
  at: number;
}

/** `maskfleet worker <stage>` processes: start, signal, replace; every signal sent is recorded. */
export class WorkerSet {
  readonly all: WorkerProcess[] = [];
  readonly signals: KillRecord[] = [];
  private n = 0;

  constructor(
    private readonly env: ChaosEnv,
    /** MASKFLEET_* settings for every worker (lock duration, grace period, attempts). */
    private readonly settings: Record<string, string>,
  ) {}

  start(stage: Stage, concurrency: number, where: WorkerPlacement = {}): WorkerProcess {
    const id = `mf-${stage}-${++this.n}`;
    const [command = process.execPath, ...prefix] = [...(where.launcher ?? []), process.execPath];
    const args = [
      ...prefix,
      cliEntry(),
      "worker",
      stage,
      "--concurrency",
      String(concurrency),
      "--redis",
      this.env.redis.url,
      "--generator",
      "titan",
      "--s3-endpoint",
      this.env.s3.endpoint,
      "--bedrock-endpoint",
      this.env.bedrock.endpoint,
      "--rate",
      "unlimited",
    ];
    const child = spawn(command, args, {
      cwd: repoRoot,
      env: {
        ...process.env,
        ...standInCredentials,
        AWS_ENDPOINT_URL_BEDROCK: this.env.controlEndpoint,
        AWS_REGION: "us-east-1", // the control stand-in's, whatever a profile of this machine says
        MASKFLEET_LOG_LEVEL: "warn",
        AWS_SDK_UA_APP_ID: id,
        ...this.settings,
        ...where.env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let markReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    const w: WorkerProcess = {
      id,
      stage,
      child,
      startedAt: Date.now(),
      ready,
      stderr: "",
      exited: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() }))),
    };
    child.stderr?.on("data", (d: Buffer) => {
      w.stderr = (w.stderr + d.toString()).slice(-20_000);
      const started = / worker \d+ started.*?(?:, metrics on (\S+))?\n/.exec(w.stderr);
      if (started) {
        w.metricsUrl ??= started[1];
        markReady();
      }
    });
    void w.exited.then(() => markReady());
    this.all.push(w);
    return w;
  }

  live(): WorkerProcess[] {
    return this.all.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
  }

  signal(w: WorkerProcess, signal: NodeJS.Signals): void {
    this.signals.push({ id: w.id, stage: w.stage, signal, at: Date.now() });
    w.child.kill(signal);
  }

  /** SIGTERM every live worker and wait for all to exit (SIGKILL after `timeoutMs`). */
  async stopAll(timeoutMs = 60_000): Promise<void> {
    const live = this.live();
    for (const w of live) this.signal(w, "SIGTERM");
    await Promise.all(
      live.map(async (w) => {
        const timer = setTimeout(() => w.child.kill("SIGKILL"), timeoutMs);
        await w.exited;
        clearTimeout(timer);
      }),
    );
  }

  /** The last lines each worker wrote to stderr, for assertion messages. */
  logs(maxPerWorker = 1500): string {
    return this.all
      .filter((w) => w.stderr.trim())
      .map((w) => `--- ${w.id} (pid ${w.child.pid}) ---\n${w.stderr.slice(-maxPerWorker)}`)
      .join("\n");
  }
}

/** mulberry32: a small seeded PRNG, so a failing chaos schedule can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ChaosOptions {
  images: number;
  prompts?: string[];
  seeds?: { from: number; to: number };
  /** Processes per pool (default detect 2, mask 2, generate 2, finalize 1). */
  workers?: Partial<Record<Stage, number>>;
  /** Jobs at once per process (default detect 2, mask 1, generate 4, finalize 2). */
  concurrency?: Partial<Record<Stage, number>>;
  /** false: the same run with no faults (the comparison). */
  faults: boolean;
  /** Mean time between SIGKILLs (each 0.5x-1.5x of it), ms; the first four hit detect, mask, generate, finalize. */
  killEveryMs?: number;
  /** Crash and restart Redis once when this fraction of the images has finished (default 0.4). */
  redisRestartAt?: number;
  /** The workers' lock duration (MASKFLEET_LOCK_DURATION_MS): how soon a killed worker's jobs go to another. */
  lockDurationMs?: number;
  /** Bedrock stand-in latency per request, ms. */
  latencyMs?: number;
  timeoutMs?: number;
  seed?: number;
  name?: string;
  /** Progress lines (kills, restarts). */
  onEvent?: (line: string) => void;
}

export interface ChaosReport {
  images: number;
  runId: string;
  status: RunStatus;
  /** `maskfleet report` of the run, taken after it finished. */
  report: RunReport;
  /** Wall time from enqueue to the last image finished (all workers were up at the start). */
  wallMs: number;
  kills: KillRecord[];
  redisRestarts: number;
  /** Worker processes started in all (the first ones and the replacements). */
  processesStarted: number;
  requests: StandInRequest[];
  delivery: DeliveryReport;
  /** Problems found in the outputs and run state (empty: every image complete and whole). */
  problems: string[];
  /** Objects checked (decoded or parsed). */
  objectsChecked: number;
  seed: number;
  logs: string;
}

const defaultWorkers: Record<Stage, number> = { detect: 2, mask: 2, generate: 2, finalize: 1 };
const defaultConcurrency: Record<Stage, number> = { detect: 2, mask: 1, generate: 4, finalize: 2 };

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const seed = o.seed ?? Date.now() % 2 ** 31;
  const random = prng(seed);
  const say = o.onEvent ?? (() => undefined);
  const prompts = o.prompts ?? ["a studio backdrop"];
  const seeds = o.seeds ?? { from: 1, to: 2 };
  const env = await startChaosEnv(o.name ?? (o.faults ? "chaos-redis" : "chaos-calm-redis"), { latencyMs: o.latencyMs ?? 30 });
  const lockDurationMs = o.lockDurationMs ?? 5000;
  const workers = new WorkerSet(env, { MASKFLEET_LOCK_DURATION_MS: String(lockDurationMs), MASKFLEET_ATTEMPTS: "4" });
  const counts = { ...defaultWorkers, ...o.workers };
  const conc = { ...defaultConcurrency, ...o.concurrency };
  const runId = o.faults ? "chaos" : "calm";
  let redisRestarts = 0;
  try {
    await uploadSmallPhotos(env.s3, o.images);
    const config = catalogConfig(env, { prompts, seeds });
    for (const stage of stages) for (let i = 0; i < counts[stage]; i++) workers.start(stage, conc[stage]);
    await Promise.all(workers.all.map((w) => w.ready));
    const notUp = workers.all.filter((w) => w.child.exitCode !== null);
    if (notUp.length) throw new Error(`workers did not start:\n${workers.logs()}`);

    const started = performance.now();
    await enqueueCatalog(env, config, runId);
    let done = false;
    const chaos = (async () => {
      if (!o.faults) return;
      const every = o.killEveryMs ?? 3000;
      const restartAt = o.redisRestartAt ?? 0.4;
      while (!done) {
        await sleep(every * (0.5 + random()));
        if (done) break;
        if (redisRestarts === 0) {
          const s = await runStatus(env.conn, runId, false);
          if (s.finished >= s.total * restartAt) {
            const t0 = Date.now();
            await env.redis.restart();
            redisRestarts++;
            say(`redis crashed and restarted at ${s.finished}/${s.total} images (down ${Date.now() - t0} ms)`);
            continue;
          }
        }
        // The first kills go through the stages in pipeline order (each stage loses a process while
        // it has work), then any live worker at random.
        const live = workers.live();
        const stage = stages[workers.signals.length];
        const pool = stage ? live.filter((w) => w.stage === stage) : live;
        const victim = pool[Math.floor(random() * pool.length)];
        if (!victim) continue;
        workers.signal(victim, "SIGKILL");
        const next = workers.start(victim.stage, conc[victim.stage]);
        say(`SIGKILL ${victim.id} (pid ${victim.child.pid}), started ${next.id}`);
      }
    })();
    let status: RunStatus;
    try {
      status = await waitForRun(env.conn, runId, { intervalMs: 200, timeoutMs: o.timeoutMs ?? 240_000 });
    } finally {
      done = true;
      await chaos;
    }
    const wallMs = performance.now() - started;
    status = await runStatus(env.conn, runId);
    const report = await runReport(env.conn, runId);
    const verified = await verifyOutputs(env, runId, { results: prompts.length * (seeds.to - seeds.from + 1) });
    await workers.stopAll();
    const requests = env.bedrock.requests;
    return {
      images: o.images,
      runId,
      status,
      report,
      wallMs,
      kills: workers.signals.filter((s) => s.signal === "SIGKILL"),
      redisRestarts,
      processesStarted: workers.all.length,
      requests,
      delivery: deliveryReport(requests, workers.signals),
      problems: verified.problems,
      objectsChecked: verified.objects,
      seed,
      logs: workers.logs(),
    };
  } finally {
    await workers.stopAll(10_000);
    await env.close();
  }
}

/** The S3 keys under a prefix of the output bucket (every page). */
async function listKeys(env: ChaosEnv, prefix: string): Promise<string[]> {
  const client = s3Client({ region: "us-east-1", endpoints: { s3: env.s3.endpoint } });
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: "out-bucket", Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Decodes every pixel (a truncated or corrupt file throws). */
async function decode(body: Buffer, format: "png" | "jpeg"): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const meta = await sharp(body, { failOn: "error" }).metadata();
  if (meta.format !== format) throw new Error(`is ${meta.format}, not ${format}`);
  const { data, info } = await sharp(body, { failOn: "error" }).raw().toBuffer({ resolveWithObject: true });
  // The channels as stored (sharp's raw output of a grey PNG may be RGB).
  return { data, width: info.width, height: info.height, channels: meta.channels };
}

/**
 * The run's state and every image's outputs: the run finished with no failure; per image exactly
 * detections.json, mask.json, mask.png (grey), mask-bedrock.png (pure black/white RGB),
 * cutout.png (RGBA), `results` results (PNG), manifest.json (every result ok) and
 * contact-sheet.jpg, nothing else, each decoded whole and of the photo's size; no failed job in
 * any queue. Returns the problems found (none: the run is complete and consistent).
 */
export async function verifyOutputs(env: ChaosEnv, runId: string, o: { results: number }): Promise<{ problems: string[]; objects: number }> {
  const problems: string[] = [];
  let objects = 0;
  const status = await runStatus(env.conn, runId);
  if (status.finished !== status.total) problems.push(`run: ${status.finished}/${status.total} images finished`);
  if (status.failed !== 0)
    problems.push(
      `run: ${status.failed} images failed: ${status.failures
        .slice(0, 5)
        .map((f) => `${f.name} [${f.stage}] ${f.reason}`)
        .join("; ")}`,
    );
  for (const stage of stages) {
    const c = status.stages[stage];
    const expected = stage === "generate" ? status.total * o.results : status.total;
    if (c.done !== expected || c.total !== expected) problems.push(`run: stage ${stage} ${c.done}/${c.total}, expected ${expected}/${expected}`);
  }
  const queues = openQueues(env.conn);
  try {
    for (const stage of stages) {
      const { failed = 0 } = await queues[stage].getJobCounts("failed");
      if (failed) problems.push(`queue ${stage}: ${failed} failed jobs`);
    }
  } finally {
    await Promise.all(Object.values(queues).map((q) => q.close()));
  }

  const records: ImageRecord[] = await new RunState(env.conn).images(runId);
  const bucketPrefix = outRoot.replace("s3://out-bucket/", "");
  const all = await listKeys(env, bucketPrefix);
  const byImage = new Map<string, string[]>();
  for (const key of all) {
    const prefix = key.slice(bucketPrefix.length).split("/")[0] as string;
    byImage.set(prefix, [...(byImage.get(prefix) ?? []), key]);
  }
  // The run keeps no names of images that finished well: each output folder names its image in its manifest.
  const ids = new Set(records.map((r) => r.imageId));
  const prefixOf = new Map<string, string>();
  for (const prefix of byImage.keys()) {
    const manifest = env.s3.getObject("out-bucket", `${bucketPrefix}${prefix}/manifest.json`)?.body;
    const id = manifest ? (JSON.parse(manifest.toString("utf8")) as { imageId?: string }).imageId : undefined;
    if (id && ids.has(id) && !prefixOf.has(id)) prefixOf.set(id, prefix);
    else problems.push(`outputs under ${prefix}/ belong to no image of the run`);
  }
  const images = records.map((r) => ({ ...r, name: r.name ?? prefixOf.get(r.imageId) ?? r.imageId, outPrefix: prefixOf.get(r.imageId) ?? `(none: ${r.imageId})` }));

  for (const img of images) {
    const where = `${img.name} (${img.outPrefix})`;
    const at = (k: string) => `${bucketPrefix}${img.outPrefix}/${k}`;
    const body = (k: string) => env.s3.getObject("out-bucket", at(k))?.body;
    try {
      const manifestBody = body("manifest.json");
      if (!manifestBody) throw new Error("no manifest.json");
      const manifest = JSON.parse(manifestBody.toString("utf8")) as { imageId: string; results: { status: string; key: string; seed: number; reason?: string }[] };
      const detections = JSON.parse(body("detections.json")?.toString("utf8") ?? "null") as { width: number; height: number } | null;
      JSON.parse(body("mask.json")?.toString("utf8") ?? "null");
      objects += 3;
      if (!detections) throw new Error("no detections.json");
      if (manifest.imageId !== img.imageId) problems.push(`${where}: manifest of ${manifest.imageId}`);
      if (manifest.results.length !== o.results) problems.push(`${where}: ${manifest.results.length} results in the manifest, expected ${o.results}`);
      for (const r of manifest.results) if (r.status !== "ok") problems.push(`${where}: result seed ${r.seed} ${r.status}: ${r.reason ?? ""}`);
      const resultKeys = manifest.results.map((r) => r.key.slice(img.outPrefix.length + 1));
      if (new Set(resultKeys).size !== resultKeys.length) problems.push(`${where}: a result listed twice in the manifest`);
      const expected = ["detections.json", "mask.json", "mask.png", "mask-bedrock.png", "cutout.png", "manifest.json", "contact-sheet.jpg", ...resultKeys].sort();
      const present = (byImage.get(img.outPrefix) ?? []).map((k) => k.slice(at("").length)).sort();
      if (JSON.stringify(present) !== JSON.stringify(expected)) {
        problems.push(`${where}: outputs ${JSON.stringify(present)}, expected ${JSON.stringify(expected)}`);
      }
      const { width, height } = detections;
      const image = async (k: string, format: "png" | "jpeg", channels?: number) => {
        const b = body(k);
        if (!b) throw new Error(`no ${k}`);
        objects++;
        try {
          const d = await decode(b, format);
          if (channels !== undefined && (d.width !== width || d.height !== height || d.channels !== channels)) {
            problems.push(`${where}: ${k} is ${d.width}x${d.height}x${d.channels}, expected ${width}x${height}x${channels}`);
          }
          return d;
        } catch (err) {
          problems.push(`${where}: ${k} does not decode: ${(err as Error).message.split("\n")[0]}`);
          return undefined;
        }
      };
      await image("mask.png", "png", 1);
      await image("cutout.png", "png", 4);
      const bedrockMask = await image("mask-bedrock.png", "png", 3);
      if (bedrockMask && bedrockMask.data.some((v) => v !== 0 && v !== 255)) problems.push(`${where}: mask-bedrock.png is not pure black/white`);
      for (const k of resultKeys) await image(k, "png", 3);
      await image("contact-sheet.jpg", "jpeg");
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  return { problems, objects };
}

/**
 * Nothing lost: the run has all its images finished and succeeded, and verifyOutputs found no
 * problem in the `objects` it read back (images x (8 + results - 1): 3 JSON files, 3 masks, the
 * results and a contact sheet per image).
 */
export function assertNothingLost(r: { status: RunStatus; problems: string[]; objectsChecked: number; logs: string }, images: number, results: number, context: string): void {
  assert.equal(r.status.total, images);
  assert.equal(r.status.finished, images, r.logs);
  assert.equal(r.status.succeeded, images, JSON.stringify(r.status.failures.slice(0, 5)));
  assert.equal(r.status.failed, 0);
  assert.deepEqual(r.problems, [], `${context}\n${r.logs}`);
  assert.equal(r.objectsChecked, images * (7 + results), `3 JSON files, 3 masks, ${results} results and a contact sheet per image, each read back`);
}

export interface DeliveryReport {
  /** Distinct (image sent, prompt, seed) with at least one delivered 200. */
  keys: number;
  /** 200s fully delivered (the stand-in's 'finish' before the connection closed). */
  delivered: number;
  /** 200s answered while the client was already gone (killed mid-request): never received. */
  undelivered: number;
  /** Delivered 200s beyond the first per key, as the stand-in counts them. */
  duplicates: number;
  /**
   * Of those, the re-requests that followed a delivery to a worker SIGKILLed before the next
   * request for the key: the result reached a process that died before storing it; no client
   * can close that window.
   */
  afterReceiverKilled: number;
  /** Any other re-request: the fleet asked again for a result a live worker had received. */
  violations: string[];
  /** Delivered 200s per key (key -> count). */
  perKey: Map<string, number>;
}

const appIdOf = (r: StandInRequest): string | undefined => /(?:^|\s)app\/(\S+)/.exec(r.userAgent ?? "")?.[1];

/**
 * Per (image sent, prompt, seed): the delivered 200s, in order. Every delivery but the last must
 * have gone to a worker that was SIGKILLed before the key was asked for again; a re-request after
 * a delivery to a worker still alive (or one that exited on SIGTERM) is a violation.
 */
export function deliveryReport(requests: StandInRequest[], signals: KillRecord[]): DeliveryReport {
  const killedAt = new Map<string, number>();
  for (const s of signals) if (s.signal === "SIGKILL") killedAt.set(s.id, Math.min(s.at, killedAt.get(s.id) ?? Infinity));
  const byKey = new Map<string, StandInRequest[]>();
  for (const r of requests) {
    if (r.imageHash === undefined) continue;
    const key = `${r.imageHash}|${r.prompt}|${r.seed}`;
    byKey.set(key, [...(byKey.get(key) ?? []), r]);
  }
  const report: DeliveryReport = { keys: 0, delivered: 0, undelivered: 0, duplicates: 0, afterReceiverKilled: 0, violations: [], perKey: new Map() };
  for (const [key, asked] of byKey) {
    asked.sort((a, b) => a.at - b.at);
    const ok = asked.filter((r) => r.status === 200 && r.delivered);
    report.undelivered += asked.filter((r) => r.status === 200 && !r.delivered).length;
    if (ok.length === 0) continue;
    report.keys++;
    report.delivered += ok.length;
    report.duplicates += ok.length - 1;
    report.perKey.set(key, ok.length);
    for (const d of ok.slice(0, -1)) {
      const next = asked[asked.indexOf(d) + 1];
      const receiver = appIdOf(d);
      const killed = receiver ? killedAt.get(receiver) : undefined;
      if (next && killed !== undefined && killed <= next.at) report.afterReceiverKilled++;
      else {
        report.violations.push(
          `${key}: delivered to ${receiver ?? "?"} at ${d.deliveredAt}, asked again at ${next?.at} by ${next ? appIdOf(next) : "?"}` +
            (killed === undefined ? " (the receiver was never killed)" : ` (the receiver was killed at ${killed}, after)`),
        );
      }
    }
  }
  return report;
}
