/**
 * One BullMQ Worker per stage. Bad input (InputError) fails only that image, at once and with
 * its reason; other errors are retried with backoff and recorded when the last attempt fails.
 */
import { UnrecoverableError, Worker, type Job } from "bullmq";
import { InputError } from "../shared/errors.js";
import { keyPrefix, type Stage } from "../shared/queues.js";
import { log } from "../shared/log.js";
import type { WorkerContext } from "./context.js";
import { detectStage } from "./detect/stage.js";
import { maskStage } from "./mask/stage.js";
import { generateStage } from "./generate/stage.js";
import { finalizeStage } from "./finalize/stage.js";

/** A stage's work on one job; returns what the job stores as its result. */
export type StageProcessor = (job: Job, ctx: WorkerContext) => Promise<unknown>;

const processors: Record<Stage, StageProcessor> = {
  detect: detectStage,
  mask: maskStage,
  generate: generateStage,
  finalize: finalizeStage,
};

/** The image a job belongs to, read without trusting the payload's shape. */
function imageIdOf(job: Job): string | undefined {
  const d = job.data as { imageId?: unknown; image?: { imageId?: unknown } };
  const id = d?.imageId ?? d?.image?.imageId;
  return typeof id === "string" ? id : undefined;
}

export function startPool(stage: Stage, ctx: WorkerContext, concurrency: number): Worker {
  const processJob = processors[stage];
  const worker = new Worker(
    stage,
    async (job: Job) => {
      const started = Date.now();
      try {
        const result = await processJob(job, ctx);
        log.debug({ stage, jobId: job.id, ms: Date.now() - started }, "job done");
        return result;
      } catch (err) {
        const final = err instanceof InputError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        const reason = err instanceof Error ? err.message : String(err);
        const imageId = imageIdOf(job);
        // A failed generate job is one result of the image: finalize records it; the image goes on.
        if (final && imageId && stage !== "generate") await ctx.runState.failed(imageId, stage, reason);
        log[final ? "warn" : "info"]({ stage, jobId: job.id, attempt: job.attemptsMade + 1, reason }, final ? "job failed" : "job will retry");
        if (err instanceof InputError) throw new UnrecoverableError(reason);
        throw err;
      }
    },
    { connection: ctx.redis, prefix: keyPrefix, concurrency, autorun: true },
  );
  worker.on("error", (err) => log.error({ stage, err: err.message }, "worker error"));
  return worker;
}
