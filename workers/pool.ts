/**
 * One BullMQ Worker per stage. What a job's error means decides what happens to it:
 * - InputError (a bad image), RejectedError (a service refused this one request), ConfigError
 *   (options this worker cannot run): fails at once with its reason, no retry;
 * - ThrottledError: the whole queue pauses (for every worker process) and the job goes back to
 *   waiting without spending an attempt;
 * - FatalServiceError (access denied, no such model): the job goes back untouched and the pool
 *   stops with one clear line;
 * - anything else: retried with exponential backoff, recorded when the last attempt fails.
 * Per run, the generate pool counts generator calls (results made, not reused), throttles and
 * rejections (RunState.count; `maskfleet report` shows them). Per process, every pool reports
 * its jobs' outcomes, durations, running jobs and throttle pauses as metrics (shared/metrics.ts).
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import { ConfigError, FatalServiceError, InputError, RejectedError, ThrottledError, failureClass } from "../shared/errors.js";
import * as metrics from "../shared/metrics.js";
import type { Stage } from "../shared/queues.js";
import { log } from "../shared/log.js";
import { perSecondOf, recordFixedRate } from "../shared/rate-in-force.js";
import type { WorkerContext } from "./context.js";
import { detectStage } from "./detect/stage.js";
import { maskStage } from "./mask/stage.js";
import { generateStage, type GenerateResult } from "./generate/stage.js";
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

/** The run a job was enqueued for: image jobs carry it, generate jobs in their image. */
function runIdOf(job: Job): string | undefined {
  const d = job.data as { runId?: unknown; image?: { runId?: unknown } };
  const id = d?.runId ?? d?.image?.runId;
  return typeof id === "string" ? id : undefined;
}

/** Pause after a throttle: what the service asked for, else the base doubling per throttle with no success between (up to 16x). */
export function throttlePauseMs(baseMs: number, inARow: number, retryAfterMs?: number): number {
  return retryAfterMs ?? baseMs * 2 ** Math.min(inARow, 4);
}

/**
 * The fleet-wide limiter for a rate of `max` per `durationMs`: one job every durationMs/max
 * (rounded up), so the starts are spread evenly and no window of that length sees a burst of
 * 2 x max at a boundary, as a plain fixed-window count of `max` would allow.
 */
export function evenLimiter(rate: { max: number; durationMs: number }): { max: number; duration: number } {
  return { max: 1, duration: Math.ceil(rate.durationMs / rate.max) };
}

export interface PoolOptions {
  concurrency: number;
  /** Called once when the pool stops for a FatalServiceError. */
  onFatal(err: FatalServiceError): void;
}

export interface Pool {
  readonly worker: Worker;
  /** Resolves when none of this pool's jobs is running (for a graceful shutdown). */
  idle(): Promise<void>;
}

export function startPool(stage: Stage, ctx: WorkerContext, opts: PoolOptions): Pool {
  const processJob = processors[stage];
  // A fixed fleet-wide rate (--rate); without one, cloud generators pace themselves (adaptive, see generate/stage.ts).
  const rate = typeof ctx.config.rate === "object" ? ctx.config.rate : undefined;
  // With a rate configured, a throttle means the pace is a little fast for the service's window:
  // wait one limiter slot, doubling while throttles go on. Without one, the configured backoff.
  const throttleBaseMs = rate ? Math.min(evenLimiter(rate).duration, ctx.config.throttleBackoffMs) : ctx.config.throttleBackoffMs;
  let throttlesInARow = 0;
  let pausedUntil = 0;
  let stopped = false;
  // The generator's counters; statistics: a Redis hiccup writing one must not fail the job.
  const count = async (job: Job, name: "generatorCalls" | "throttles" | "rejected") => {
    const runId = runIdOf(job);
    if (runId && stage === "generate") await ctx.runState.count(runId, name).catch((err: Error) => log.warn({ stage, runId, name, err: err.message }, "counter not updated"));
  };

  async function runJob(job: Job, token?: string): Promise<unknown> {
    const started = Date.now();
    try {
      const result = await processJob(job, ctx);
      throttlesInARow = 0;
      metrics.jobsCompleted.inc({ stage });
      metrics.stageDuration.observe({ stage }, (Date.now() - started) / 1000);
      if (stage === "generate" && (result as GenerateResult).reused === false) await count(job, "generatorCalls");
      log.debug({ stage, jobId: job.id, ms: Date.now() - started }, "job done");
      return result;
    } catch (err) {
      if (err instanceof ThrottledError) {
        await count(job, "throttles");
        metrics.throttles.inc({ stage });
        // Requests already in flight when the queue paused belong to the same throttle: no escalation.
        if (Date.now() >= pausedUntil) {
          const pause = throttlePauseMs(throttleBaseMs, throttlesInARow++, err.retryAfterMs);
          pausedUntil = Date.now() + pause;
          metrics.rateLimitPauses.inc({ queue: stage });
          metrics.rateLimitPauseSeconds.inc({ queue: stage }, pause / 1000);
          log.warn({ stage, jobId: job.id, pauseMs: pause, reason: err.message }, "throttled: queue paused, job back to waiting");
          await ctx.queues[stage].rateLimit(pause);
        }
        throw Worker.RateLimitError();
      }
      if (err instanceof FatalServiceError) {
        if (!stopped) {
          stopped = true;
          log.error({ stage, reason: err.message }, "stopping the pool");
          void worker.close();
          opts.onFatal(err);
        }
        // Not this job's fault: back to the queue without spending an attempt.
        await job.moveToDelayed(Date.now() + 1000, token);
        throw new DelayedError();
      }
      // A bad image, a refused request, or options this worker cannot run: retrying cannot help.
      const permanent = err instanceof InputError || err instanceof RejectedError || err instanceof ConfigError;
      if (err instanceof RejectedError) await count(job, "rejected");
      const final = permanent || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const reason = err instanceof Error ? err.message : String(err);
      (final ? metrics.jobsFailed : metrics.jobsRetried).inc({ stage, reason: failureClass(err) });
      const imageId = imageIdOf(job);
      // A failed generate job is one result of the image: finalize records it; the image goes on.
      if (final && imageId && stage !== "generate") await ctx.runState.failed(imageId, stage, reason);
      log[final ? "warn" : "info"]({ stage, jobId: job.id, attempt: job.attemptsMade + 1, reason }, final ? "job failed" : "job will retry");
      if (permanent) throw new UnrecoverableError(reason);
      throw err;
    }
  }

  let running = 0;
  const idleWaiters: (() => void)[] = [];
  const worker: Worker = new Worker(
    stage,
    async (job: Job, token?: string) => {
      running++;
      metrics.jobsActive.inc({ stage });
      try {
        return await runJob(job, token);
      } finally {
        metrics.jobsActive.dec({ stage });
        if (--running === 0) for (const wake of idleWaiters.splice(0)) wake();
      }
    },
    {
      connection: ctx.redis,
      prefix: ctx.queuePrefix,
      concurrency: opts.concurrency,
      autorun: true,
      // A killed worker's jobs go back to waiting once their lock expires; each stall counts like an attempt.
      lockDuration: ctx.config.lockDurationMs,
      stalledInterval: ctx.config.lockDurationMs,
      maxStalledCount: ctx.config.attempts,
      // BullMQ keeps the limiter in Redis: the rate holds for every generate worker of the fleet together.
      ...(stage === "generate" && rate && { limiter: evenLimiter(rate) }),
    },
  );
  worker.on("error", (err) => log.error({ stage, err: err.message }, "worker error"));
  if (stage === "generate" && rate) {
    metrics.generateRate.set({ mode: "fixed" }, perSecondOf(rate));
    recordFixedRate(ctx.redis, perSecondOf(rate)).catch((err: Error) => log.warn({ err: err.message }, "rate in force not recorded"));
  }
  // Series at 0 from the start, so rates and utilisation show before the first job ends.
  for (const m of [metrics.jobsCompleted, metrics.jobsActive, metrics.throttles]) m.inc({ stage }, 0);
  metrics.workerConcurrency.inc({ stage }, opts.concurrency);
  worker.once("closed", () => metrics.workerConcurrency.dec({ stage }, opts.concurrency));
  if (stage === "generate") {
    // A generate job re-queued by `maskfleet retry` after its image's finalize had finished: finalize runs again.
    const refinalize = (job: Job | undefined) => {
      const imageId = job && imageIdOf(job);
      if (imageId) ctx.runState.refinalizeIfDue(ctx.queues.finalize, imageId).catch((err: Error) => log.warn({ imageId, err: err.message }, "finalize not re-queued"));
    };
    worker.on("completed", refinalize).on("failed", refinalize);
  }
  return { worker, idle: () => (running === 0 ? Promise.resolve() : new Promise<void>((wake) => idleWaiters.push(wake))) };
}
