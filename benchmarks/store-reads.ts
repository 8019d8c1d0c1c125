/**
 * Store reads per image: one photo in a local S3 server (test/standins/s3-server.ts), the whole
 * fleet in this process with 2 prompts x 13 seeds (the old script's sweep), results to S3. Counts
 * the reads (GetObject) of the user's input bucket and of the output bucket (the mask read back)
 * per image, and the existence checks (HeadObject) of results. Run it on two commits to compare;
 * it uses only APIs both sides have. Prints a line of JSON and writes
 * benchmarks/results/store-reads.json (--out to change).
 *
 *   npx tsx benchmarks/store-reads.ts [--generate-concurrency 4] [--out FILE]
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { resolveConfig } from "../src/config/config.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { findInputs } from "../src/producer/inputs.js";
import { waitForRun } from "../src/runs/status.js";
import { startFleet } from "../src/fleet/fleet.js";
import { makeTinyModels } from "../test/support/onnx/make-tiny-models.js";
import { startS3Server } from "../test/standins/s3-server.js";
import { startRedisServer } from "../test/scenarios/redis-server.js";

const root = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({ options: { "generate-concurrency": { type: "string", default: "4" }, out: { type: "string" } } });
Object.assign(process.env, { AWS_ACCESS_KEY_ID: "AKIDSTANDIN", AWS_SECRET_ACCESS_KEY: "x", AWS_EC2_METADATA_DISABLED: "true" });

const redis = await startRedisServer("bench-store-reads-redis", { persistence: false });
const s3 = await startS3Server();
const tiny = await makeTinyModels(join(root, ".cache", "bench", "tiny-models"));
s3.createBucket("in-bucket");
s3.createBucket("out-bucket");
s3.putObject("in-bucket", "catalog/astronaut.jpg", await readFile(join(root, "samples", "photos", "astronaut.jpg")), "image/jpeg");
const config = resolveConfig({
  target: "auto",
  samModel: tiny.sam,
  generator: "composite",
  prompts: ["a product photo on a marble kitchen counter", "a product photo in a sunny garden"],
  seeds: { from: 34, to: 46 },
  out: "s3://out-bucket/bg/",
  redisUrl: redis.url,
  s3Endpoint: s3.endpoint,
  region: "us-east-1",
  concurrency: { generate: Number(args["generate-concurrency"]) },
});
const fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
try {
  const items = await findInputs(["s3://in-bucket/catalog/"], { region: "us-east-1", endpoints: { s3: s3.endpoint } });
  s3.resetCounts();
  await enqueueImages(fleet.ctx.redis, config, "store-reads", items);
  await waitForRun(fleet.ctx.redis, "store-reads", { intervalMs: 100, timeoutMs: 120_000 });
} finally {
  await fleet.close();
  await redis.close();
}
const get = (bucket: string, suffix = "") => s3.requests.filter((r) => r.op === "GetObject" && r.bucket === bucket && (r.key ?? "").endsWith(suffix)).length;
const report = {
  benchmark: "store-reads",
  date: new Date().toISOString(),
  results: 26,
  generateConcurrency: Number(args["generate-concurrency"]),
  inputReads: get("in-bucket"),
  maskReads: get("out-bucket", "/mask.png"),
  outputReads: get("out-bucket"),
  resultChecks: s3.requests.filter((r) => r.op === "HeadObject" && (r.key ?? "").includes("/results/")).length,
};
await s3.close();
const out = args.out ?? join(root, "benchmarks", "results", "store-reads.json");
await mkdir(dirname(out), { recursive: true });
await writeFile(out, JSON.stringify(report, null, 2) + "\n");
console.log(JSON.stringify(report));
