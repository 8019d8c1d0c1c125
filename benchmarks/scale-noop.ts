/**
 * The fleet's fast no-op path, for benchmarks/scale.ts: every pool runs as in production (BullMQ
 * workers, the run's compact state, the flow of generate jobs under a finalize parent, finished
 * jobs removed), but no stage touches an image or the store. Detect hands on to mask at once, mask
 * fans out with fixed prompt variables, generate counts its result as done (reading its image from
 * the finalize parent as a real one does), finalize records the image as finished.
 *
 *   node --import tsx benchmarks/scale-noop.ts --redis URL [--concurrency 50]
 *
 * Runs until SIGTERM/SIGINT, then closes the pools.
 */
import { realpathSync } from "node:fs";
import { parseArgs } from "node:util";
import type { Job } from "bullmq";
import { resolveConfig } from "../src/config/config.js";
import { generateJobDataSchema, generateJobOf, queuedFinalizeSchema, resultIndexOf } from "../src/pipeline/jobs.js";
import { stages, type Stage } from "../src/pipeline/queues.js";
import type { WorkerContext } from "../src/stages/context.js";
import { handOn } from "../src/stages/detect.js";
import { fanOut } from "../src/stages/mask.js";
import { recordOutcome } from "../src/stages/finalize.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import type { StageProcessor } from "../src/stages/index.js";

const promptVars = { label: "object", color: "white" };

export const noopProcessors: Record<Stage, StageProcessor> = {
  detect: async (job: Job, ctx: WorkerContext) => handOn(job, ctx, await ctx.imageJob(job.data)),
  mask: async (job: Job, ctx: WorkerContext) => fanOut(job, ctx, await ctx.imageJob(job.data), promptVars),
  generate: async (job: Job, ctx: WorkerContext) => {
    const ref = generateJobDataSchema.parse(job.data);
    const { image, promptVars: vars } = await ctx.imageOfGenerate(job);
    const g = generateJobOf(image, ref.promptIndex, ref.seed, vars);
    await ctx.runState.resultDone(image.runId, image.imageId, resultIndexOf(image.options, g));
    return { resultKey: g.resultKey, promptIndex: g.promptIndex, prompt: g.prompt, seed: g.seed, generator: "noop", ms: 0, reused: true };
  },
  finalize: async (job: Job, ctx: WorkerContext) => {
    const queued = queuedFinalizeSchema.parse(job.data);
    const data = await ctx.imageJob(job.data);
    await recordOutcome(ctx, queued, data, [{ status: "ok" }]);
    return { ok: 1, failed: 0 };
  },
};

/** Every pool of the fleet on the no-op path, in this process. */
export function startNoopFleet(redisUrl: string, concurrency: number): Fleet {
  const config = resolveConfig({ redisUrl, target: "auto", generator: "composite", out: "/nonexistent/never-written" });
  return startFleet(config, stages, concurrency, undefined, noopProcessors);
}

const invokedAs = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invokedAs === realpathSync(import.meta.filename)) {
  const { values } = parseArgs({ options: { redis: { type: "string" }, concurrency: { type: "string", default: "50" } } });
  if (!values.redis) throw new Error("--redis URL is required");
  const fleet = startNoopFleet(values.redis, Number(values.concurrency));
  await new Promise<void>((resolve) => process.once("SIGTERM", resolve).once("SIGINT", resolve));
  await fleet.close();
  process.exit(0);
}
