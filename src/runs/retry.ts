/**
 * `maskfleet retry`: a run's failed images run again, each from the stage that failed it (from
 * their failure records: src/runs/run-state.ts); with `--stage mask`, the images held for review too
 * (their mask then counts as reviewed). A retried image keeps what its earlier stages
 * stored: detect and mask reuse their outputs, and of an image whose results partly failed only
 * the failed results are generated again (finalize counts the ones in the store as made).
 */
import { FlowProducer } from "bullmq";
import type { Redis } from "ioredis";
import { queuedImageSchema, type QueuedImage } from "../pipeline/jobs.js";
import { finalizeFlow, jobOptions, openQueues, stages, type Stage, type StageQueues } from "../pipeline/queues.js";
import { RunState, jobIdOf, type FailureRecord } from "./run-state.js";
import { quietBullmqErrors } from "../runtime/redis.js";
import { AdminError, noSuchRun, reasonMatcher } from "./admin.js";

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
    // Images held for review go on only when asked for by their stage: `retry --stage mask`.
    const stageMatches = record.review ? opts.stage === "mask" : !opts.stage || opts.stage === record.stage;
    if (stageMatches && matches(record.reason)) picked.push(record);
  }
  const queuePrefix = await state.queuePrefixOf(runId);
  const queues = openQueues(redis, queuePrefix);
  const flows = new FlowProducer({ connection: redis, prefix: queuePrefix });
  quietBullmqErrors(flows, redis, { flows: queuePrefix });
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
async function attemptsOf(queues: StageQueues): Promise<number> {
  for (const s of stages) {
    const [job] = await queues[s].getJobs(["waiting", "delayed", "active"], 0, 0);
    if (job?.opts.attempts) return job.opts.attempts;
  }
  return 3;
}

/**
 * Adds a reopened image's job at the stage that failed, made from the image its record keeps
 * (generate: a finalize parent with its failed results as children). A mask job made here carries
 * no boxes: mask reads them from detections.json.
 */
async function requeue(record: FailureRecord, image: QueuedImage, imageJobId: string, to: { queues: StageQueues; flows: FlowProducer; attempts: number }): Promise<void> {
  const options = { ...jobOptions(to.attempts), jobId: imageJobId };
  switch (record.stage) {
    case "detect":
      await to.queues.detect.add("detect", { ...image, kind: "detect" }, options);
      return;
    case "mask":
      await to.queues.mask.add("mask", { ...image, kind: "mask", ...(record.review && { reviewed: true }) }, options);
      return;
    case "generate":
    case "finalize": {
      if (!record.promptVars) throw new AdminError(`${record.name}: its failure record has no prompt variables: enqueue the image again`);
      const generate = (record.failedResults ?? []).map((g) => ({
        kind: "generate" as const,
        runId: image.runId,
        imageId: image.imageId,
        promptIndex: g.promptIndex,
        seed: g.seed,
      }));
      await to.flows.add(finalizeFlow({ ...image, kind: "finalize", promptVars: record.promptVars }, generate, { jobId: imageJobId, attempts: to.attempts }));
    }
  }
}

export function formatRetry(s: RetrySummary): string {
  const lines = [`run ${s.runId}: ${s.images} failed or held images queued again (${stages.map((st) => `${st} ${s.requeued[st]}`).join(", ")})`];
  for (const k of s.skipped.slice(0, 20)) lines.push(`  skipped ${k.name} [${k.stage}]: ${k.why}`);
  if (s.skipped.length > 20) lines.push(`  ... and ${s.skipped.length - 20} more skipped`);
  return lines.join("\n");
}
