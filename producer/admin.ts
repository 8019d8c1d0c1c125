/**
 * Run administration. `maskfleet retry` re-queues a run's failed jobs with BullMQ's job.retry();
 * `maskfleet clean` removes a run's jobs and run state from Redis, never its outputs.
 *
 * Retrying a generate job whose finalize parent already finished: job.retry() puts the job back
 * among the parent's dependencies, but BullMQ never moves a finished parent back to waiting. So
 * the image is marked (RunState.markRefinalize) and, once its last re-queued generate job ends,
 * the generate pool retries the finished finalize job (RunState.refinalizeIfDue): the manifest
 * and contact sheet are written again with the new results next to the earlier ones.
 */
import type { Job, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { ConfigError } from "../shared/errors.js";
import { keyPrefix, openQueues, stages, type Stage } from "../shared/queues.js";
import { RunState } from "../shared/run-state.js";

/** A run that is not there, or one that may not be cleaned now. */
export class AdminError extends Error {
  override readonly name = "AdminError";
}

export function parseStage(text: string): Stage {
  if (!(stages as readonly string[]).includes(text)) throw new ConfigError("stage", `expected one of ${stages.join(", ")}, got ${text}`);
  return text as Stage;
}

/** `--reason`: a case-insensitive substring, or a /regular expression/ with optional flags (e.g. /no face|empty/i). */
export function reasonMatcher(reason?: string): (text: string) => boolean {
  if (reason === undefined || reason === "") return () => true;
  const re = /^\/(.+)\/([a-z]*)$/s.exec(reason);
  if (re) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(re[1] as string, re[2]);
    } catch (err) {
      throw new ConfigError("reason", `${reason} is not a valid regular expression (${(err as Error).message})`);
    }
    return (text) => pattern.test(text);
  }
  const needle = reason.toLowerCase();
  return (text) => text.toLowerCase().includes(needle);
}

/** The image a job belongs to: image jobs carry its id, generate jobs in their image. */
export function imageIdOfJob(job: Job): string | undefined {
  const d = job.data as { imageId?: unknown; image?: { imageId?: unknown } } | undefined;
  const id = d?.imageId ?? d?.image?.imageId;
  return typeof id === "string" ? id : undefined;
}

async function imageIdsOfRun(state: RunState, runId: string): Promise<string[]> {
  if (!(await state.runExists(runId))) throw new AdminError(`no run named ${runId} (maskfleet status lists the runs)`);
  return state.runImageIds(runId);
}

/** Jobs of a queue in the given states, page by page, kept when `keep` says so. */
export async function jobsWhere(queue: Queue, states: ("failed" | "completed" | "active")[], keep: (job: Job) => boolean): Promise<Job[]> {
  const page = 500;
  const out: Job[] = [];
  for (let start = 0; ; start += page) {
    const jobs = await queue.getJobs(states, start, start + page - 1, true);
    for (const job of jobs) if (job && keep(job)) out.push(job);
    if (jobs.length < page) return out;
  }
}

export interface RetryOptions {
  stage?: Stage;
  /** Case-insensitive substring or /regex/ of the failure reason. */
  reason?: string;
}

export interface RetrySummary {
  runId: string;
  /** Failed jobs re-queued, per stage. */
  requeued: Record<Stage, number>;
  /** Images counted as in progress again. */
  images: number;
  /** Finished finalize jobs that run again once their re-queued generate jobs end. */
  refinalize: number;
  /** Finalize jobs left waiting by a worker that stopped before re-queueing them, re-queued now. */
  recovered: number;
  skipped: { jobId: string; stage: Stage; why: string }[];
}

const fullRetry = { resetAttemptsMade: true, resetAttemptsStarted: true };

/** The stages whose done-times a retry at `stage` must forget (finalize also writes generate's). */
function rerunStages(stage: Stage): Stage[] {
  return stage === "finalize" ? ["generate", "finalize"] : stages.slice(stages.indexOf(stage));
}

/**
 * Re-queues the failed jobs of a run's images (optionally one stage, optionally only reasons
 * matching), forgetting each image's recorded failure so status counts it as in progress again.
 */
export async function retryRun(redis: Redis, runId: string, opts: RetryOptions = {}): Promise<RetrySummary> {
  const state = new RunState(redis);
  const ids = new Set(await imageIdsOfRun(state, runId));
  const matches = reasonMatcher(opts.reason);
  const summary: RetrySummary = { runId, requeued: { detect: 0, mask: 0, generate: 0, finalize: 0 }, images: 0, refinalize: 0, recovered: 0, skipped: [] };
  const reopened = new Set<string>();
  const refinalizing = new Set<string>();
  const queues = openQueues(redis, await state.queuePrefixOf(runId));
  try {
    const failed = {} as Record<Stage, Job[]>;
    for (const stage of stages) {
      failed[stage] =
        opts.stage && opts.stage !== stage
          ? []
          : await jobsWhere(queues[stage], ["failed"], (job) => ids.has(imageIdOfJob(job) ?? "") && matches(job.failedReason ?? ""));
    }

    // Generate first, per image: its finalize parent decides what a retry means.
    const byImage = new Map<string, Job[]>();
    for (const job of failed.generate) {
      const imageId = imageIdOfJob(job) as string;
      byImage.set(imageId, [...(byImage.get(imageId) ?? []), job]);
    }
    for (const [imageId, jobs] of byImage) {
      const parent = await queues.finalize.getJob(imageId);
      const parentState = parent ? await parent.getState() : "missing";
      if (parentState !== "completed" && parentState !== "failed" && parentState !== "waiting-children") {
        const why =
          parentState === "missing"
            ? "its image's finalize job is gone (expired or cleaned): enqueue the image again"
            : `its image's finalize job is ${parentState}: retry once it has finished`;
        for (const job of jobs) summary.skipped.push({ jobId: String(job.id), stage: "generate", why });
        continue;
      }
      // waiting-children: BullMQ runs the parent when its children (the retried ones too) end.
      const finished = parentState !== "waiting-children";
      await state.clearFailure(imageId);
      if (finished) await state.clearDone(imageId, ["generate", "finalize"]);
      for (const job of jobs) {
        try {
          await job.retry("failed", fullRetry);
          summary.requeued.generate++;
        } catch (err) {
          summary.skipped.push({ jobId: String(job.id), stage: "generate", why: (err as Error).message });
        }
      }
      reopened.add(imageId);
      if (finished) {
        // Marked only after every job is back: a job ending before its siblings were re-queued
        // must not start finalize early. Jobs that already ended are covered by the call here.
        await state.markRefinalize(imageId);
        await state.refinalizeIfDue(queues.finalize, imageId);
        refinalizing.add(imageId);
      }
    }
    summary.refinalize = refinalizing.size;

    for (const stage of ["detect", "mask", "finalize"] as const) {
      for (const job of failed[stage]) {
        const imageId = imageIdOfJob(job) as string;
        // Its re-queued generate jobs run this finalize again when they end.
        if (stage === "finalize" && refinalizing.has(imageId)) continue;
        await state.clearFailure(imageId);
        await state.clearDone(imageId, rerunStages(stage));
        try {
          await job.retry("failed", fullRetry);
          summary.requeued[stage]++;
          reopened.add(imageId);
        } catch (err) {
          await state.failed(imageId, stage, job.failedReason ?? "unknown");
          summary.skipped.push({ jobId: String(job.id), stage, why: (err as Error).message });
        }
      }
    }

    // Images whose finalize should have run again but whose last generate job ended in a worker that stopped first.
    for (const img of await state.images(runId)) {
      if (img.refinalizeSince !== undefined && !refinalizing.has(img.imageId) && (await state.refinalizeIfDue(queues.finalize, img.imageId))) {
        summary.recovered++;
      }
    }
  } finally {
    await Promise.all(stages.map((s) => queues[s].close()));
  }
  summary.images = reopened.size;
  return summary;
}

export function formatRetry(s: RetrySummary): string {
  const total = stages.reduce((n, st) => n + s.requeued[st], 0);
  const lines = [`run ${s.runId}: re-queued ${total} failed jobs of ${s.images} images (${stages.map((st) => `${st} ${s.requeued[st]}`).join(", ")})`];
  if (s.refinalize) lines.push(`  ${s.refinalize} images get their manifest written again once their generate jobs end`);
  if (s.recovered) lines.push(`  ${s.recovered} finalize jobs that were left waiting re-queued`);
  for (const k of s.skipped.slice(0, 20)) lines.push(`  skipped ${k.stage} ${k.jobId}: ${k.why}`);
  if (s.skipped.length > 20) lines.push(`  ... and ${s.skipped.length - 20} more skipped`);
  return lines.join("\n");
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Job ids (per queue) of these images found among the Redis keys: every job, whatever its state. */
export async function jobIdsOfImages(redis: Redis, imageIds: ReadonlySet<string>, queuePrefix = keyPrefix): Promise<Record<Stage, Set<string>>> {
  const found = Object.fromEntries(stages.map((s) => [s, new Set<string>()])) as Record<Stage, Set<string>>;
  // <prefix>:<queue>:<job id>[:logs|:lock|:dependencies|...]; job ids are <image id> or <image id>-p<i>-s<seed>.
  const jobKey = new RegExp(`^${escapeRegExp(queuePrefix)}:(${stages.join("|")}):(([0-9a-f]{16,64})(?:-p\\d+-s\\d+)?)(?::|$)`);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${queuePrefix}:*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const m = jobKey.exec(key);
      if (m && imageIds.has(m[3] as string)) found[m[1] as Stage].add(m[2] as string);
    }
  } while (cursor !== "0");
  return found;
}

export interface CleanSummary {
  runId: string;
  /** Jobs removed per queue. */
  removed: Record<Stage, number>;
  /** Images whose per-image state was deleted (they belonged to this run only). */
  forgotten: number;
  /** Images kept because another run holds them too (their jobs and state are that run's as well). */
  shared: number;
  /** Jobs still running (only with force) and flow parents waiting on them: not removable now. */
  left: number;
}

/**
 * Removes a run's queue state: the jobs of its images in every queue and state (finalize parents
 * with their generate children), the run's hash, image set and counters, and the per-image keys
 * of images no other run holds. Outputs are never touched. Refused while jobs of the run are
 * active, unless `force`: then the running jobs (and their parents) are left to finish.
 */
export async function cleanRun(redis: Redis, runId: string, opts: { force?: boolean } = {}): Promise<CleanSummary> {
  const state = new RunState(redis);
  const ids = await imageIdsOfRun(state, runId);
  const all = new Set(ids);
  const shared = await state.heldByOtherRuns(runId, ids);
  const own = new Set(ids.filter((id) => !shared.has(id)));
  const queuePrefix = await state.queuePrefixOf(runId);
  const queues = openQueues(redis, queuePrefix);
  try {
    const active = (await Promise.all(stages.map((s) => jobsWhere(queues[s], ["active"], (job) => all.has(imageIdOfJob(job) ?? ""))))).flat();
    if (active.length > 0 && !opts.force) {
      throw new AdminError(`run ${runId} has ${active.length} active jobs (${active.slice(0, 3).map((j) => `${j.queueName} ${j.id}`).join(", ")}${active.length > 3 ? ", ..." : ""}): wait for them, stop the workers, or use --force`);
    }
    const before = await jobIdsOfImages(redis, own, queuePrefix);
    // Parents first, with their children; then whatever is left (removing a missing job is a no-op).
    for (const stage of ["finalize", "mask", "detect", "generate"] as const) {
      for (const id of before[stage]) await queues[stage].remove(id, { removeChildren: true });
    }
    const after = await jobIdsOfImages(redis, own, queuePrefix);
    // A `maskfleet run`'s own queues hold nothing but its jobs: once they are gone, so are the queues.
    if (queuePrefix !== keyPrefix && stages.every((s) => after[s].size === 0)) for (const s of stages) await queues[s].obliterate({ force: true });
    await state.forgetRun(runId, [...own]);
    const removed = Object.fromEntries(stages.map((s) => [s, before[s].size - after[s].size])) as Record<Stage, number>;
    return { runId, removed, forgotten: own.size, shared: shared.size, left: stages.reduce((n, s) => n + after[s].size, 0) };
  } finally {
    await Promise.all(stages.map((s) => queues[s].close()));
  }
}

export function formatClean(s: CleanSummary): string {
  const total = stages.reduce((n, st) => n + s.removed[st], 0);
  const lines = [
    `run ${s.runId} cleaned: ${total} jobs removed (${stages.map((st) => `${st} ${s.removed[st]}`).join(", ")}), ` +
      `state of ${s.forgotten} images deleted${s.shared ? `, ${s.shared} images kept (other runs hold them)` : ""}; outputs untouched`,
  ];
  if (s.left) lines.push(`  ${s.left} running jobs (or their flow parents) could not be removed: run clean again once they have finished`);
  return lines.join("\n");
}
