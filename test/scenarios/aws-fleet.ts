/**
 * A catalog run on the cloud path, all on 127.0.0.1: photos in a local S3 server, the producer
 * enqueueing s3://in-bucket/catalog/, detect/mask/finalize pools in this process, generate pools in
 * separate `maskfleet worker generate` processes (the fleet's global rate limit must hold across
 * them), Titan through the real SDK against the validating Bedrock stand-in, results to s3://out/.
 * The worker processes' lifecycle gate asks a control-plane stand-in where Titan is still served
 * (LEGACY: an account that kept access). Used by test/aws-fleet.test.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { resolveConfig, type Config } from "../../src/config/config.js";
import { enqueueImages } from "../../src/producer/enqueue.js";
import { findInputs } from "../../src/producer/inputs.js";
import { runStatus, waitForRun, type RunStatus } from "../../src/runs/status.js";
import { startFleet } from "../../src/fleet/fleet.js";
import { startBedrockStandIn, type BedrockStandInOptions, type StandInRequest } from "../standins/bedrock.js";
import { startBedrockControlStandIn, type ControlModel, type ControlRequest, type ControlStandIn } from "../standins/bedrock-control.js";
import { startS3Server, type S3Server } from "../standins/s3-server.js";
import { cliEntry, repoRoot } from "../helpers.js";

/** Dummy credentials for the AWS SDK: the only AWS endpoints tests reach are local stand-ins. */
export const standInCredentials = { AWS_ACCESS_KEY_ID: "AKIDSTANDIN", AWS_SECRET_ACCESS_KEY: "stand-in-secret", AWS_EC2_METADATA_DISABLED: "true" };

/** Titan v1 and v2 still served, as Legacy (an account that kept access): the catalog the Titan scenarios gate against. */
export const titanLegacyCatalog: ControlModel[] = [
  { modelId: "amazon.titan-image-generator-v1", status: "LEGACY" },
  { modelId: "amazon.titan-image-generator-v2:0", status: "LEGACY" },
];

/**
 * A control-plane stand-in with Titan Legacy (or `catalog`), set as AWS_ENDPOINT_URL_BEDROCK in
 * this process until closed; the previous value comes back on close. Children given `env` gate
 * against it in its region (us-east-1, whatever a profile of this machine says).
 */
export async function startTitanControl(catalog: ControlModel[] = titanLegacyCatalog): Promise<ControlStandIn & { env: { AWS_ENDPOINT_URL_BEDROCK: string; AWS_REGION: string } }> {
  const control = await startBedrockControlStandIn({ catalog });
  const previous = process.env.AWS_ENDPOINT_URL_BEDROCK;
  process.env.AWS_ENDPOINT_URL_BEDROCK = control.endpoint;
  return {
    ...control,
    env: { AWS_ENDPOINT_URL_BEDROCK: control.endpoint, AWS_REGION: "us-east-1" },
    async close() {
      if (previous === undefined) delete process.env.AWS_ENDPOINT_URL_BEDROCK;
      else process.env.AWS_ENDPOINT_URL_BEDROCK = previous;
      await control.close();
    },
  };
}

export interface AwsFleetOptions {
  redisUrl: string;
  samModel: string;
  images: number;
  prompts: string[];
  seeds: { from: number; to: number };
  /** The fleet's configured rate, e.g. "10/s", or "unlimited" (no limiter); undefined = the fleet's adaptive rate. */
  rate?: string;
  generateWorkers: number;
  generateConcurrency: number;
  bedrock: BedrockStandInOptions;
  throttleBackoffMs?: number;
  timeoutMs?: number;
}

export interface AwsFleetResult {
  status: RunStatus;
  requests: StandInRequest[];
  /** What the lifecycle gates asked the control plane. */
  controlRequests: ControlRequest[];
  s3: S3Server;
  /** Manifests read back from s3://out-bucket/bg/, one per image. */
  manifests: { results: { status: string; prompt: string; seed: number; reason?: string }[] }[];
  wallMs: number;
  config: Config;
  workerLogs: string[];
}

/** Distinct small photos (the samples, scaled and mirrored) as S3 objects under in/catalog/. */
async function uploadPhotos(s3: S3Server, count: number): Promise<void> {
  const dir = join(repoRoot, "samples", "photos");
  const sources = (await readdir(dir)).filter((f) => f.endsWith(".jpg")).sort();
  for (let i = 0; i < count; i++) {
    const src = join(dir, sources[i % sources.length] as string);
    let img = sharp(src).resize({ width: 360 + 8 * i });
    if (Math.floor(i / sources.length) % 2 === 1) img = img.flop();
    s3.putObject("in-bucket", `catalog/photo-${String(i).padStart(3, "0")}.jpg`, await img.jpeg({ quality: 85 }).toBuffer(), "image/jpeg");
  }
}

function startGenerateWorker(args: string[], env: NodeJS.ProcessEnv, logs: string[]): ChildProcess {
  const child = spawn(process.execPath, [cliEntry(), "worker", "generate", ...args], {
    env: { ...process.env, ...standInCredentials, MASKFLEET_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.on("data", (d: Buffer) => logs.push(d.toString()));
  return child;
}

export async function runAwsFleet(opts: AwsFleetOptions): Promise<AwsFleetResult> {
  Object.assign(process.env, standInCredentials);
  const s3 = await startS3Server();
  const bedrock = await startBedrockStandIn(opts.bedrock);
  const control = await startTitanControl();
  s3.createBucket("in-bucket");
  s3.createBucket("out-bucket");
  await uploadPhotos(s3, opts.images);
  const config = resolveConfig({
    target: "auto",
    samModel: opts.samModel,
    generator: "titan",
    modelId: "amazon.titan-image-generator-v2:0",
    prompts: opts.prompts,
    seeds: opts.seeds,
    out: "s3://out-bucket/bg/",
    redisUrl: opts.redisUrl,
    s3Endpoint: s3.endpoint,
    bedrockEndpoint: bedrock.endpoint,
    rate: opts.rate,
    throttleBackoffMs: opts.throttleBackoffMs ?? 500,
    attempts: 4,
  });
  const workerArgs = [
    "--concurrency",
    String(opts.generateConcurrency),
    "--redis",
    opts.redisUrl,
    "--generator",
    "titan",
    "--s3-endpoint",
    s3.endpoint,
    "--bedrock-endpoint",
    bedrock.endpoint,
    ...(opts.rate ? ["--rate", opts.rate] : []),
  ];
  const workerEnv = { MASKFLEET_THROTTLE_BACKOFF_MS: String(config.throttleBackoffMs), MASKFLEET_ATTEMPTS: String(config.attempts), ...control.env };
  const workerLogs: string[] = [];
  const workers = Array.from({ length: opts.generateWorkers }, () => startGenerateWorker(workerArgs, workerEnv, workerLogs));
  const fleet = startFleet(config, ["detect", "mask", "finalize"]);
  const started = performance.now();
  try {
    const items = await findInputs(["s3://in-bucket/catalog/"], { region: config.region, endpoints: { s3: s3.endpoint } });
    await enqueueImages(fleet.ctx.redis, config, "aws-fleet", items);
    await Promise.race([waitForRun(fleet.ctx.redis, "aws-fleet", { intervalMs: 200, timeoutMs: opts.timeoutMs ?? 180_000 }), fleet.fatal]);
    const wallMs = performance.now() - started;
    const status = await runStatus(fleet.ctx.redis, "aws-fleet");
    const manifests = [];
    for (const key of [...new Set(s3.requests.filter((r) => r.op === "PutObject" && r.key?.endsWith("/manifest.json")).map((r) => r.key as string))]) {
      const obj = s3.getObject("out-bucket", key);
      if (obj) manifests.push(JSON.parse(obj.body.toString("utf8")));
    }
    return { status, requests: bedrock.requests, controlRequests: control.requests, s3, manifests, wallMs, config, workerLogs };
  } finally {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null) return resolve();
            w.once("exit", () => resolve());
            w.kill("SIGTERM");
          }),
      ),
    );
    await fleet.close();
    await bedrock.close();
    await control.close();
    await s3.close();
  }
}

/** Accepted (200, not filtered) requests per (image sent, prompt, seed): each must be 1. */
export function acceptedPerKey(requests: StandInRequest[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of requests) {
    if (r.status !== 200 || r.filtered) continue;
    const key = `${r.imageHash}|${r.prompt}|${r.seed}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Requests per second the stand-in accepted, first to last. */
export function acceptedRate(requests: StandInRequest[]): number {
  const times = requests.filter((r) => r.status === 200).map((r) => r.at);
  if (times.length < 2) return 0;
  return ((times.length - 1) * 1000) / (Math.max(...times) - Math.min(...times));
}

/** Most requests (any status but 429) that arrived within any `windowMs` window. */
export function peakInWindow(requests: StandInRequest[], windowMs: number): number {
  const times = requests
    .filter((r) => r.status !== 429)
    .map((r) => r.at)
    .sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[i] as number) - (times[j] as number) >= windowMs) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}
