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
 * its jobs' outcomes, durations, running jobs, busy seconds and throttle pauses as metrics
 * (src/runtime/metrics.ts).
 * A pool takes jobs once its stage's models have warmed up (src/fleet/warm-up.ts); until every pool
 * of the process has, the process is not ready (src/runtime/readiness.ts, GET /ready).
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import { ConfigError, FatalServiceError, InputError, RejectedError, ThrottledError, failureClass } from "../runtime/errors.js";
import * as metrics from "../runtime/metrics.js";
import { logErrorsOnce } from "../runtime/redis.js";
import type { Stage } from "../pipeline/queues.js";
import { log } from "../runtime/log.js";
import { queuedImageSchema, resultCountOf, safeParseJobData, type JobData } from "../pipeline/jobs.js";
import { generateResultSchema } from "../pipeline/artifacts.js";
import { normaliseReason } from "../runs/reasons.js";
import { causeOf } from "../runs/run-state.js";
import { perSecondOf, recordFixedRate } from "../rate/rate-in-force.js";
import { poolStarting } from "../runtime/readiness.js";
import type { WorkerContext } from "../stages/context.js";
import { stageProcessors, type StageProcessor } from "../stages/index.js";
import { warmUp } from "./warm-up.js";

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
  /** Other work for the stage's jobs than the stage's own (benchmarks); the stage's models are then not warmed up. */
  processor?: StageProcessor;
  /** Called once when the pool stops for a FatalServiceError. */
  onFatal(err: FatalServiceError): void;
}

export interface Pool {
  readonly worker: Worker;
  /** Resolves when none of this pool's jobs is running (for a graceful shutdown). */
  idle(): Promise<void>;
}

export function startPool(stage: Stage, ctx: WorkerContext, opts: PoolOptions): Pool {
  const processJob = opts.processor ?? stageProcessors[stage];
  // A fixed fleet-wide rate (--rate); without one, cloud generators pace themselves (adaptive, see src/stages/generate.ts).
  const rate = typeof ctx.config.rate === "object" ? ctx.config.rate : undefined;
  // With a rate configured, a throttle means the pace is a little fast for the service's window:
  // wait one limiter slot, doubling while throttles go on. Without one, the configured backoff.
  const throttleBaseMs = rate ? Math.min(evenLimiter(rate).duration, ctx.config.throttleBackoffMs) : ctx.config.throttleBackoffMs;
  let throttlesInARow = 0;
  let pausedUntil = 0;
  let stopped = false;
  // The generator's counters; statistics: a Redis hiccup writing one must not fail the job.
  const count = async (data: JobData | undefined, name: "generatorCalls" | "throttles" | "rejected") => {
    if (data?.kind === "generate")
      await ctx.runState.count(data.runId, name).catch((err: Error) => log.warn({ stage, runId: data.runId, name, err: err.message }, "counter not updated"));
  };

  // The histogram behind `maskfleet report`'s durations; statistics: a Redis hiccup must not fail the job.
  const recordDuration = async (data: JobData | undefined, ms: number) => {
    if (data) await ctx.runState.duration(data.runId, stage, ms).catch((err: Error) => log.warn({ stage, runId: data.runId, err: err.message }, "duration not recorded"));
  };

  /** An image that failed for good at this stage: its outcome, cause and record (for `retry`) in its run's state. */
  const recordFailure = async (job: Job, data: JobData | undefined, reason: string) => {
    // A failed generate job is one result of the image: finalize records it; the image goes on.
    if (stage === "generate") return;
    // The image as queued, and a finalize job's prompt variables: `retry` queues the job again from them.
    // A payload this stage cannot read still fails its image when it names one, so no image is lost.
    const queued = data ? queuedImageSchema.parse(data) : queuedImageSchema.safeParse(job.data).data;
    if (!queued) return; // no image of a run: nothing to record it in
    const promptVars = data?.kind === "finalize" ? data.promptVars : undefined;
    const image = await ctx.imageJob(queued).catch(() => undefined);
    const cause = causeOf(stage, normaliseReason(reason, image ?? queued));
    // The results it will not make (none when finalize failed: they were made).
    const notAttempted = stage === "finalize" || !image ? 0 : resultCountOf(image.options);
    await ctx.runState.finished(queued.runId, queued.imageId, {
      outcome: "failed",
      stage,
      name: queued.name,
      failedResults: 0,
      notAttempted,
      causes: [[cause, 1]],
      record: { stage, reason, name: queued.name, attempts: job.attemptsMade + 1, job: queued, ...(promptVars && { promptVars }), notAttempted, causes: [[cause, 1]] },
    });
  };

  async function runJob(job: Job, data: JobData | undefined, token?: string): Promise<unknown> {
    const started = Date.now();
    try {
      const result = await processJob(job, ctx);
      throttlesInARow = 0;
      metrics.jobsCompleted.inc({ stage });
      metrics.stageDuration.observe({ stage }, (Date.now() - started) / 1000);
      await recordDuration(data, Date.now() - started);
      if (data?.kind === "generate" && generateResultSchema.safeParse(result).data?.reused === false) await count(data, "generatorCalls");
      log.debug({ stage, jobId: job.id, ms: Date.now() - started }, "job done");
      return result;
    } catch (err) {
      if (err instanceof ThrottledError) {
        await count(data, "throttles");
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
      if (err instanceof RejectedError) await count(data, "rejected");
      const final = permanent || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const reason = err instanceof Error ? err.message : String(err);
      (final ? metrics.jobsFailed : metrics.jobsRetried).inc({ stage, reason: failureClass(err) });
      if (final) await recordDuration(data, Date.now() - started);
      if (final) await recordFailure(job, data, reason);
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
      // Read once for the pool's own records (the stage reads the job itself).
      const data = safeParseJobData(stage, job.data);
      const ended = metrics.jobStarted(stage, data?.runId); // jobs_active, busy seconds
      try {
        return await runJob(job, data, token);
      } finally {
        ended();
        if (--running === 0) for (const wake of idleWaiters.splice(0)) wake();
      }
    },
    {
      connection: ctx.redis,
      prefix: ctx.queuePrefix,
      concurrency: opts.concurrency,
      autorun: false, // run() after the warm-up
      // A killed worker's jobs go back to waiting once their lock expires; each stall counts like an attempt.
      lockDuration: ctx.config.lockDurationMs,
      stalledInterval: ctx.config.lockDurationMs,
      maxStalledCount: ctx.config.attempts,
      // BullMQ keeps the limiter in Redis: the rate holds for every generate worker of the fleet together.
      ...(stage === "generate" && rate && { limiter: evenLimiter(rate) }),
    },
  );
  logErrorsOnce(worker, { stage }, "worker error");
  if (stage === "generate" && rate) {
    metrics.generateRate.set({ mode: "fixed" }, perSecondOf(rate));
    recordFixedRate(ctx.redis, perSecondOf(rate)).catch((err: Error) => log.warn({ err: err.message }, "rate in force not recorded"));
  }
  metrics.poolStarted(stage);
  metrics.workerConcurrency.inc({ stage }, opts.concurrency);
  worker.once("closed", () => metrics.workerConcurrency.dec({ stage }, opts.concurrency));
  const started = poolStarting();
  void (opts.processor ? Promise.resolve() : warmUp(stage, ctx)).then(() => {
    worker.run().catch((err: Error) => log.error({ stage, err: err.message }, "worker error"));
    started();
  });
  return { worker, idle: () => (running === 0 ? Promise.resolve() : new Promise<void>((wake) => idleWaiters.push(wake))) };
}
