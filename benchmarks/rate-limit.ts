/**
 * The generator request rate across the fleet, against a Bedrock stand-in that throttles above a
 * known rate L (more than L accepted requests in any 1 s window -> 429 ThrottlingException, no
 * rate header, as Bedrock does): 300 Stability inpaint results (10 photos x 3 prompts x 10 seeds)
 * over 2 `maskfleet worker generate` processes x concurrency 8, all on 127.0.0.1, once per mode:
 * - adaptive: no --rate, the fleet finds the rate itself (src/rate/adaptive-rate.ts);
 * - fixed at 95% of L: --rate, BullMQ's fleet-wide limiter;
 * - no limiter: --rate unlimited, throttles and queue pauses only (the naive path).
 * Reports accepted requests per second overall and after warm-up (from 2 s after the first
 * throttle, or after the first 2 s when nothing throttled), as % of L, throttled requests as % of
 * all requests, and whether every result was produced exactly once. Detect, mask and finalize run
 * in this process on the tiny test models. Writes benchmarks/results/rate-limit.json.
 *
 *   npx tsx benchmarks/rate-limit.ts [--limit 5] [--modes adaptive,fixed,unlimited]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { resolveConfig } from "../src/config/config.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { findInputs } from "../src/producer/inputs.js";
import { runStatus, waitForRun } from "../src/runs/status.js";
import { startFleet } from "../src/fleet/fleet.js";
import { makeTinyModels } from "../test/support/onnx/make-tiny-models.js";
import { startBedrockStandIn, type StandInRequest } from "../test/standins/bedrock.js";
import { startBedrockControlStandIn } from "../test/standins/bedrock-control.js";
import { startRedisServer } from "../test/scenarios/redis-server.js";
import { scratchDir } from "../test/helpers.js";
import { acceptedPerKey } from "../test/scenarios/aws-fleet.js";

const root = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({ options: { limit: { type: "string", default: "5" }, modes: { type: "string", default: "adaptive,fixed,unlimited" } } });
const limit = Number(args.limit);
const photos = 10;
const prompts = ["a studio backdrop", "a sunny beach", "a marble counter"];
const seeds = { from: 1, to: 10 };
const results = photos * prompts.length * (seeds.to - seeds.from + 1);
const credentials = { AWS_ACCESS_KEY_ID: "AKIDSTANDIN", AWS_SECRET_ACCESS_KEY: "stand-in-secret", AWS_EC2_METADATA_DISABLED: "true", AWS_REGION: "us-east-1" };
Object.assign(process.env, credentials);

const modes: Record<string, { name: string; rate: string }> = {
  adaptive: { name: "adaptive (no --rate)", rate: "" },
  fixed: { name: "fixed --rate at 95% of L", rate: `${Math.round(limit * 0.95 * 60)}/min` },
  unlimited: { name: "no limiter (--rate unlimited)", rate: "unlimited" },
};

const tiny = await makeTinyModels(join(root, ".cache", "bench", "tiny-models"));
const inputDir = await scratchDir("bench-rate-photos");
const sources = (await readdir(join(root, "samples", "photos"))).filter((f) => f.endsWith(".jpg")).sort();
for (let i = 0; i < photos; i++) {
  await sharp(join(root, "samples", "photos", sources[i % sources.length]!))
    .resize({ width: 320 + 8 * i })
    .jpeg()
    .toFile(join(inputDir, `photo-${i}.jpg`));
}

/** Accepted per second between `from` (ms) and the last accepted request. */
function acceptedPerSecond(requests: StandInRequest[], from: number): number {
  const times = requests.filter((r) => r.status === 200 && r.at >= from).map((r) => r.at);
  if (times.length < 2) return 0;
  return ((times.length - 1) * 1000) / (Math.max(...times) - Math.min(...times));
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const rows = [];
for (const key of args.modes.split(",")) {
  const mode = modes[key];
  if (!mode) throw new Error(`unknown mode ${key} (adaptive, fixed, unlimited)`);
  process.stderr.write(`${mode.name}...\n`);
  const redis = await startRedisServer(`bench-rate-redis-${key}`, { persistence: false });
  const bedrock = await startBedrockStandIn({ throttleAbovePerSecond: limit, latencyMs: 30, maxRequests: 20_000 });
  const control = await startBedrockControlStandIn();
  const out = await scratchDir(`bench-rate-out-${key}`);
  const config = resolveConfig({
    target: "auto",
    samModel: tiny.sam,
    generator: "stability",
    prompts,
    seeds,
    out,
    redisUrl: redis.url,
    bedrockEndpoint: bedrock.endpoint,
    attempts: 4,
  });
  const workerArgs = [
    "worker",
    "generate",
    "--concurrency",
    "8",
    "--redis",
    redis.url,
    "--bedrock-endpoint",
    bedrock.endpoint,
    "--generator",
    "stability",
    ...(mode.rate ? ["--rate", mode.rate] : []),
  ];
  const logs: string[] = [];
  const env = {
    ...process.env,
    ...credentials,
    AWS_ENDPOINT_URL_BEDROCK: control.endpoint,
    MASKFLEET_LOG_LEVEL: "warn",
    MASKFLEET_THROTTLE_BACKOFF_MS: "1000",
    MASKFLEET_METRICS_PORT: "0",
    MASKFLEET_METRICS_HOST: "127.0.0.1",
  };
  const workers: ChildProcess[] = Array.from({ length: 2 }, () => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), ...workerArgs], { env, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => logs.push(d.toString()));
    return child;
  });
  const fleet = startFleet(config, ["detect", "mask", "finalize"]);
  const started = Date.now();
  try {
    await enqueueImages(fleet.ctx.redis, config, "rate", await findInputs([inputDir], { region: "us-east-1" }));
    await waitForRun(fleet.ctx.redis, "rate", { intervalMs: 200, timeoutMs: 300_000 });
    const status = await runStatus(fleet.ctx.redis, "rate");
    const requests = bedrock.requests;
    const perKey = acceptedPerKey(requests);
    const accepted = [...perKey.values()].reduce((a, b) => a + b, 0);
    const throttled = requests.filter((r) => r.status === 429).length;
    const firstThrottle = requests.find((r) => r.status === 429)?.at;
    const firstAccepted = requests.find((r) => r.status === 200)?.at ?? started;
    const warm = (firstThrottle ?? firstAccepted) + 2000;
    const written = (await readdir(out, { recursive: true })).filter((f) => String(f).includes("/results/")).length;
    rows.push({
      mode: key,
      name: mode.name,
      rate: mode.rate || "adaptive",
      limitPerSecond: limit,
      results,
      accepted,
      duplicates: accepted - perKey.size,
      resultsWritten: written,
      exactlyOnce: accepted === results && perKey.size === results && written === results,
      throttled,
      throttledOfRequests: round1((throttled / requests.length) * 100),
      acceptedPerSecond: Math.round(acceptedPerSecond(requests, 0) * 100) / 100,
      ofLimit: round1((acceptedPerSecond(requests, 0) / limit) * 100),
      ofLimitAfterWarmup: round1((acceptedPerSecond(requests, warm) / limit) * 100),
      warmupSeconds: round1((warm - firstAccepted) / 1000),
      wallSeconds: round1((Date.now() - started) / 1000),
      failedImages: status.failed,
    });
  } finally {
    await Promise.all(workers.map((w) => new Promise<void>((done) => (w.exitCode !== null ? done() : (w.once("exit", () => done()), w.kill("SIGTERM"))))));
    await fleet.close();
    await Promise.all([bedrock.close(), control.close(), redis.close()]);
  }
}

const report = { benchmark: "rate-limit", date: new Date().toISOString(), node: process.version, workers: "2 processes x concurrency 8", rows };
await mkdir(join(root, "benchmarks", "results"), { recursive: true });
await writeFile(join(root, "benchmarks", "results", "rate-limit.json"), JSON.stringify(report, null, 2) + "\n");
console.log(`\n${results} Stability results, 2 generate worker processes x concurrency 8, stand-in throttling above L = ${limit}/s`);
console.log("| mode | accepted/s | % of L | % of L after warm-up | throttled (% of requests) | exactly once | wall s |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.acceptedPerSecond} | ${r.ofLimit}% | ${r.ofLimitAfterWarmup}% (after ${r.warmupSeconds} s) | ${r.throttled} (${r.throttledOfRequests}%) | ${r.exactlyOnce ? "yes" : `no: ${r.accepted} accepted, ${r.duplicates} duplicates, ${r.resultsWritten} written`} | ${r.wallSeconds} |`,
  );
}
console.log("\nreport: benchmarks/results/rate-limit.json");
