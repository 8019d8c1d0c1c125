/**
 * The fleet-wide generator rate limit against a Bedrock stand-in that throttles above a known
 * rate: 200 generate jobs (10 photos x 4 prompts x 5 seeds) across 2 `maskfleet worker generate`
 * processes, with the limiter set to the stand-in's limit, to 95% of it, and, as the naive path,
 * with no limiter (throttles and backoff only). Prints a table and writes benchmarks/results/rate-limit.json.
 *
 *   npx tsx benchmarks/rate-limit.ts [--limit 5] [--redis redis://127.0.0.1:6379/10]
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { makeTinyModels } from "../tools/make-tiny-models.js";
import { acceptedPerKey, acceptedRate, peakInWindow, runAwsFleet } from "../test/scenarios/aws-fleet.js";

const root = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: { limit: { type: "string", default: "5" }, redis: { type: "string", default: "redis://127.0.0.1:6379/10" } },
});
const limit = Number(args.limit);
const tiny = await makeTinyModels(join(root, ".cache", "bench", "tiny-models"));
const prompts = ["a studio backdrop", "a sunny beach", "a marble counter", "a city street at night"];

const rows = [];
const runs: [string, string | undefined][] = [
  ["limiter at the quota", `${limit}/s`],
  ["limiter at 95% of the quota", `${limit * 19}/20s`],
  ["no limiter (naive)", undefined],
];
for (const [name, rate] of runs) {
  const redis = new Redis(args.redis);
  await redis.flushdb();
  await redis.quit();
  process.stderr.write(`${name}...\n`);
  const run = await runAwsFleet({
    // the naive path may never finish under constant throttling: it is reported, not waited on forever
    redisUrl: args.redis,
    samModel: tiny.sam,
    images: 10,
    prompts,
    seeds: { from: 1, to: 5 },
    rate,
    generateWorkers: 2,
    generateConcurrency: 8,
    bedrock: { throttleAbovePerSecond: limit, maxRequests: 5000 },
    throttleBackoffMs: 1000,
    timeoutMs: 240_000,
  }).catch((err: Error) => err);
  if (run instanceof Error) {
    rows.push({ name, configuredRate: rate ?? "none", standInLimitPerSecond: limit, generateJobs: 200, error: run.message });
    continue;
  }
  const perKey = acceptedPerKey(run.requests);
  const accepted = [...perKey.values()].reduce((a, b) => a + b, 0);
  rows.push({
    name,
    configuredRate: rate ?? "none",
    standInLimitPerSecond: limit,
    generateJobs: 200,
    accepted,
    duplicates: accepted - perKey.size,
    throttled: run.requests.filter((r) => r.status === 429).length,
    acceptedPerSecond: Math.round(acceptedRate(run.requests) * 100) / 100,
    ofLimit: Math.round((acceptedRate(run.requests) / limit) * 1000) / 10,
    peakPerSecondWindow: peakInWindow(run.requests, 1000),
    wallSeconds: Math.round(run.wallMs / 100) / 10,
    failedImages: run.status.failed,
  });
}

const report = { benchmark: "rate-limit", date: new Date().toISOString(), node: process.version, rows };
await mkdir(join(root, "benchmarks", "results"), { recursive: true });
await writeFile(join(root, "benchmarks", "results", "rate-limit.json"), JSON.stringify(report, null, 2) + "\n");
console.log(`\n200 generate jobs, 2 worker processes x concurrency 8, stand-in throttling above ${limit}/s`);
console.log("| run | accepted/s | % of limit | peak in any 1 s | throttled (429) | duplicates | wall s |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  if ("error" in r) {
    console.log(`| ${r.name} | ${r.error} | | | | | |`);
    continue;
  }
  console.log(`| ${r.name} | ${r.acceptedPerSecond} | ${r.ofLimit}% | ${r.peakPerSecondWindow} | ${r.throttled} | ${r.duplicates} | ${r.wallSeconds} |`);
}
console.log(`\nreport: benchmarks/results/rate-limit.json`);
