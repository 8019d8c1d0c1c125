/**
 * Run administration. `maskfleet retry` runs a run's failed images again from the stage that
 * failed (from their failure records: shared/run-state.ts); `maskfleet clean` removes a run's
 * jobs and state from Redis, never its outputs.
 *
 * A retried image keeps what its earlier stages stored: detect and mask reuse their outputs, and
 * of an image whose results partly failed only the failed results are generated again (finalize
 * counts the ones in the store as made).
 */
import type { Job, Queue } from "bullmq";
import { FlowProducer } from "bullmq";
import type { Redis } from "ioredis";
import { ConfigError } from "../shared/errors.js";
import { generateJobId, queuedImageSchema, type QueuedImage } from "../shared/jobs.js";
import { jobOptions, keyPrefix, openQueues, stages, type Stage } from "../shared/queues.js";
import { RunState, jobIdOf, type FailureRecord } from "../shared/run-state.js";

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

const noSuchRun = (runId: string) => new AdminError(`no run named ${runId} (maskfleet status lists the runs)`);

export interface RetryOptions {
  stage?: Stage;
  /** Case-insensitive substring or /regex/ of the failure reason. */
  reason?: string;
}

export interface RetrySummary {
  runId: string;
  /** Images queued again, per stage they run again from (generate: only their failed results). */
  requeued: Record<Stage, number>;
  /** Images counted as in progress again. */
  images: number;
  skipped: { name: string; stage: Stage; why: string }[];
}

/**
 * Queues a run's failed images again (optionally of one stage, optionally only reasons
 * matching), each from the stage that failed it; its failure is taken back first, so status
 * counts it as in progress. Images with failed results run those results again.
 */
export async function retryRun(redis: Redis, runId: string, opts: RetryOptions = {}): Promise<RetrySummary> {
  const state = new RunState(redis);
  const tag = await state.tag(runId);
  if (tag === undefined) throw noSuchRun(runId);
  const matches = reasonMatcher(opts.reason);
  const summary: RetrySummary = { runId, requeued: { detect: 0, mask: 0, generate: 0, finalize: 0 }, images: 0, skipped: [] };
  const picked: (FailureRecord & { imageId: string })[] = [];
  for await (const record of state.failureRecords(runId)) {
    if ((!opts.stage || opts.stage === record.stage) && matches(record.reason)) picked.push(record);
  }
  const queuePrefix = await state.queuePrefixOf(runId);
  const queues = openQueues(redis, queuePrefix);
  const flows = new FlowProducer({ connection: redis, prefix: queuePrefix });
  const attempts = await attemptsOf(queues);
  try {
    for (const record of picked) {
      const parsed = queuedImageSchema.safeParse(record.job);
      if (!parsed.success) {
        summary.skipped.push({ name: record.name, stage: record.stage, why: "its job is not in a form this version reads: enqueue the image again" });
        continue;
      }
      if (!(await state.reopen(runId, record.imageId, record))) continue; // another retry took it
      await requeue(record, parsed.data, jobIdOf(tag, record.imageId), { queues, flows, attempts });
      summary.requeued[record.stage]++;
      summary.images++;
    }
  } finally {
    await flows.close();
    await Promise.all(stages.map((s) => queues[s].close()));
  }
  return summary;
}

/** The attempts the run's jobs were given: those of a job in its queues, else 3. */
async function attemptsOf(queues: Record<Stage, Queue>): Promise<number> {
  for (const s of stages) {
    const [job] = await queues[s].getJobs(["waiting", "delayed", "active"], 0, 0);
    if (job?.opts.attempts) return job.opts.attempts;
  }
  return 3;
}

/** Adds a reopened image's job at the stage that failed (generate: a finalize parent with its failed results as children). */
async function requeue(record: FailureRecord, job: QueuedImage, imageJobId: string, to: { queues: Record<Stage, Queue>; flows: FlowProducer; attempts: number }): Promise<void> {
  const options = { ...jobOptions(to.attempts), jobId: imageJobId };
  if (record.stage === "detect" || record.stage === "mask") {
    await to.queues[record.stage].add(record.stage, job, options);
    return;
  }
  if (!record.promptVars) throw new AdminError(`${record.name}: its failure record has no prompt variables: enqueue the image again`);
  const finalize = { ...job, promptVars: record.promptVars };
  const children = (record.failedResults ?? []).map((g) => ({
    name: "generate",
    queueName: "generate",
    data: { runId: job.runId, imageId: job.imageId, promptIndex: g.promptIndex, seed: g.seed },
    opts: { ...jobOptions(to.attempts), jobId: generateJobId(imageJobId, g), ignoreDependencyOnFailure: true },
  }));
  await to.flows.add({ name: "finalize", queueName: "finalize", data: finalize, opts: options, children });
}

export function formatRetry(s: RetrySummary): string {
  const lines = [`run ${s.runId}: ${s.images} failed images queued again (${stages.map((st) => `${st} ${s.requeued[st]}`).join(", ")})`];
  for (const k of s.skipped.slice(0, 20)) lines.push(`  skipped ${k.name} [${k.stage}]: ${k.why}`);
  if (s.skipped.length > 20) lines.push(`  ... and ${s.skipped.length - 20} more skipped`);
  return lines.join("\n");
}

export interface CleanSummary {
  runId: string;
  /** Jobs removed per queue. */
  removed: Record<Stage, number>;
  /** Images whose state was deleted. */
  forgotten: number;
  /** Jobs still running (only with force) and flow parents waiting on them: not removable now. */
  left: number;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Ids of a run's jobs in a queue, found by their keys (`<prefix>:<queue>:<tag>-<image id>[...]`): unfinished work only, so a window's worth. */
async function jobIdsOfRun(redis: Redis, queuePrefix: string, stage: Stage, tag: string): Promise<Set<string>> {
  const ids = new Set<string>();
  const head = `${queuePrefix}:${stage}:`;
  const jobKey = new RegExp(`^${escapeRegExp(head)}(${escapeRegExp(tag)}-[0-9a-f]{16,64}(?:-p\\d+-s\\d+)?)(?::|$)`);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${head}${tag}-*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const m = jobKey.exec(key);
      if (m) ids.add(m[1] as string);
    }
  } while (cursor !== "0");
  return ids;
}

/**
 * Removes a run: its jobs still in the queues (finished ones are gone already) and its state.
 * Outputs are never touched. Refused while jobs of the run are active, unless `force`: then the
 * running jobs (and their parents) are left to finish.
 */
export async function cleanRun(redis: Redis, runId: string, opts: { force?: boolean } = {}): Promise<CleanSummary> {
  const state = new RunState(redis);
  if (!(await state.runExists(runId))) throw noSuchRun(runId);
  const tag = await state.tag(runId);
  const queuePrefix = await state.queuePrefixOf(runId);
  const queues = openQueues(redis, queuePrefix);
  try {
    const active = (await Promise.all(stages.map((s) => queues[s].getActive()))).flat().filter((job: Job | undefined) => job && (job.data as { runId?: unknown })?.runId === runId);
    if (active.length > 0 && !opts.force) {
      throw new AdminError(`run ${runId} has ${active.length} active jobs (${active.slice(0, 3).map((j) => `${j.queueName} ${j.id}`).join(", ")}${active.length > 3 ? ", ..." : ""}): wait for them, stop the workers, or use --force`);
    }
    const removed = { detect: 0, mask: 0, generate: 0, finalize: 0 } as Record<Stage, number>;
    let left = 0;
    if (tag !== undefined) {
      const before = Object.fromEntries(await Promise.all(stages.map(async (s) => [s, await jobIdsOfRun(redis, queuePrefix, s, tag)] as const))) as Record<Stage, Set<string>>;
      // Parents first, with their children; then whatever is left (removing a missing job is a no-op).
      for (const stage of ["finalize", "mask", "detect", "generate"] as const) {
        for (const id of before[stage]) await queues[stage].remove(id, { removeChildren: true });
      }
      for (const s of stages) {
        const after = await jobIdsOfRun(redis, queuePrefix, s, tag);
        removed[s] = before[s].size - after.size;
        left += after.size;
      }
    }
    // A `maskfleet run`'s own queues hold nothing but its jobs: once they are gone, so are the queues.
    if (queuePrefix !== keyPrefix && left === 0) for (const s of stages) await queues[s].obliterate({ force: true });
    const forgotten = await state.imageCount(runId);
    await state.forget(runId);
    return { runId, removed, forgotten, left };
  } finally {
    await Promise.all(stages.map((s) => queues[s].close()));
  }
}

export function formatClean(s: CleanSummary): string {
  const total = stages.reduce((n, st) => n + s.removed[st], 0);
  const lines = [`run ${s.runId} cleaned: ${total} jobs removed (${stages.map((st) => `${st} ${s.removed[st]}`).join(", ")}), state of ${s.forgotten} images deleted; outputs untouched`];
  if (s.left) lines.push(`  ${s.left} running jobs (or their flow parents) could not be removed: run clean again once they have finished`);
  return lines.join("\n");
}
