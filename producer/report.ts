/**
 * `maskfleet report`: a run's outcome as JSON: image and result counts, failures grouped by
 * cause, per-stage durations, throughput and the generator's calls, throttles and rejections.
 */
import type { Job } from "bullmq";
import type { Redis } from "ioredis";
import { openQueues, stages, type Stage } from "../shared/queues.js";
import { RunState, type ImageRecord } from "../shared/run-state.js";
import { AdminError, imageIdOfJob, jobsWhere } from "./admin.js";
import { formatRateInForce, rateInForce, type RateInForce } from "../shared/rate-in-force.js";

export interface StageDurations {
  /** Durations measured. */
  n: number;
  medianMs: number | null;
  p90Ms: number | null;
  maxMs: number | null;
  /**
   * jobs: BullMQ's processedOn -> finishedOn of the run's completed and failed jobs (last
   * attempt). run-state: the jobs have expired; the time between the image's previous stage
   * finishing (or its enqueueing) and this one, queue waits included (finalize: not measurable).
   */
  source: "jobs" | "run-state" | "none";
}

export interface FailureGroup {
  stage: Stage;
  /** The reason with the image's name replaced by <image>, so one cause is one group. */
  reason: string;
  /** Images (image failures) or results (generate failures) with this reason. */
  count: number;
  /** Up to 5 image names. */
  examples: string[];
}

export interface RunReport {
  runId: string;
  createdAt: string;
  reportedAt: string;
  images: { total: number; finished: number; ok: number; failed: number; inProgress: number };
  /**
   * Generate results (prompt x seed): ok = in the output; failed = missing from a finished
   * image's manifest; pending = of images still in progress; notAttempted = of images that
   * failed before generate.
   */
  results: { ok: number; failed: number; pending: number; notAttempted: number };
  failures: {
    /** Images that failed for good, by stage and reason (from run state). */
    images: FailureGroup[];
    /** Failed generate jobs still in BullMQ (kept 30 days), by reason. */
    results: FailureGroup[];
  };
  durations: Record<Stage, StageDurations>;
  /** Finished images per minute, from the run's creation to its last finished image. */
  imagesPerMin: number | null;
  elapsedSeconds: number | null;
  /** Counted by the generate pools: results the generator made (reused ones not), throttles, rejections. */
  generator: { calls: number; throttles: number; rejected: number };
  /** The fleet's generator rate in force now (fixed --rate or adaptive); null when none. */
  rate: RateInForce | null;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

function durationsOf(values: number[], source: StageDurations["source"]): StageDurations {
  const sorted = values.filter((v) => Number.isFinite(v) && v >= 0).sort((a, b) => a - b);
  if (sorted.length === 0) return { n: 0, medianMs: null, p90Ms: null, maxMs: null, source: "none" };
  return { n: sorted.length, medianMs: percentile(sorted, 0.5), p90Ms: percentile(sorted, 0.9), maxMs: sorted[sorted.length - 1] as number, source };
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Replaces the image's name, path, output prefix and id in a reason with <image>. */
export function normaliseReason(reason: string, image: { name?: string; input?: string; outPrefix?: string; imageId?: string }): string {
  const names = [image.input, image.outPrefix, image.name, image.name?.split(/[/\\]/).pop(), image.imageId]
    .filter((n): n is string => typeof n === "string" && n.length >= 3)
    .sort((a, b) => b.length - a.length);
  if (names.length === 0) return reason;
  return reason.replace(new RegExp([...new Set(names)].map(escapeRe).join("|"), "g"), "<image>");
}

function groupFailures(items: { stage: Stage; reason: string; name: string }[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const it of items) {
    const key = `${it.stage}\0${it.reason}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { stage: it.stage, reason: it.reason, count: 0, examples: [] }));
    g.count++;
    if (g.examples.length < 5 && !g.examples.includes(it.name)) g.examples.push(it.name);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
}

function fallbackDurations(images: ImageRecord[]): Record<Stage, number[]> {
  const gap = (a?: number, b?: number) => (a !== undefined && b !== undefined ? b - a : NaN);
  return {
    detect: images.map((i) => gap(i.enqueuedAt, i.doneAt.detect)),
    mask: images.map((i) => gap(i.doneAt.detect, i.doneAt.mask)),
    generate: images.map((i) => gap(i.doneAt.mask, i.doneAt.generate)),
    finalize: [],
  };
}

export async function runReport(redis: Redis, runId: string): Promise<RunReport> {
  const state = new RunState(redis);
  const createdAt = await state.runCreatedAt(runId);
  if (createdAt === undefined) throw new AdminError(`no run named ${runId} (maskfleet status lists the runs)`);
  const images = await state.images(runId);
  const byId = new Map(images.map((i) => [i.imageId, i]));
  const counters = await state.counters(runId);

  const ofRun = (job: Job) => byId.has(imageIdOfJob(job) ?? "");
  const jobsByStage = {} as Record<Stage, Job[]>;
  let failedGenerate: Job[] = [];
  const queues = openQueues(redis, await state.queuePrefixOf(runId));
  try {
    for (const stage of stages) {
      const failed = await jobsWhere(queues[stage], ["failed"], ofRun);
      jobsByStage[stage] = [...(await jobsWhere(queues[stage], ["completed"], ofRun)), ...failed];
      if (stage === "generate") failedGenerate = failed;
    }
  } finally {
    await Promise.all(stages.map((s) => queues[s].close()));
  }

  const fallback = fallbackDurations(images);
  const durations = Object.fromEntries(
    stages.map((s) => {
      const fromJobs = jobsByStage[s].filter((j) => j.processedOn && j.finishedOn).map((j) => (j.finishedOn as number) - (j.processedOn as number));
      return [s, fromJobs.length ? durationsOf(fromJobs, "jobs") : durationsOf(fallback[s], "run-state")];
    }),
  ) as Record<Stage, StageDurations>;

  const failedImgs = images.filter((i) => i.failedStage !== undefined);
  const finishedImgs = images.filter((i) => i.failedStage !== undefined || i.doneAt.finalize !== undefined);
  const results = { ok: 0, failed: 0, pending: 0, notAttempted: 0 };
  for (const i of images) {
    results.ok += i.genDone;
    const missing = Math.max(0, i.genTotal - i.genDone);
    if (i.failedStage === "detect" || i.failedStage === "mask") results.notAttempted += missing;
    else if (i.doneAt.finalize !== undefined || i.failedStage !== undefined) results.failed += missing;
    else results.pending += missing;
  }

  const imageFailures = failedImgs.map((i) => ({ stage: i.failedStage as Stage, reason: normaliseReason(i.reason ?? "unknown", i), name: i.name }));
  const resultFailures = failedGenerate.map((j) => {
      const img = (j.data as { image?: { name?: string; input?: string; outPrefix?: string; imageId?: string } }).image ?? {};
    return { stage: "generate" as const, reason: normaliseReason(j.failedReason ?? "unknown", img), name: img.name ?? String(j.id) };
  });

  const finishTimes = finishedImgs.map((i) => Math.max(i.doneAt.finalize ?? 0, i.failedAt ?? 0)).filter((t) => t > 0);
  const lastFinish = finishTimes.length ? Math.max(...finishTimes) : undefined;
  const elapsedSeconds = lastFinish !== undefined ? Math.max(0.001, (lastFinish - createdAt) / 1000) : null;
  return {
    runId,
    createdAt: new Date(createdAt).toISOString(),
    reportedAt: new Date().toISOString(),
    images: {
      total: images.length,
      finished: finishedImgs.length,
      ok: finishedImgs.length - failedImgs.length,
      failed: failedImgs.length,
      inProgress: images.length - finishedImgs.length,
    },
    results,
    failures: { images: groupFailures(imageFailures), results: groupFailures(resultFailures) },
    durations,
    imagesPerMin: elapsedSeconds !== null ? (finishedImgs.length / elapsedSeconds) * 60 : null,
    elapsedSeconds,
    generator: { calls: counters.generatorCalls ?? 0, throttles: counters.throttles ?? 0, rejected: counters.rejected ?? 0 },
    rate: await rateInForce(redis),
  };
}

const secs = (ms: number | null) => (ms === null ? "-" : `${(ms / 1000).toFixed(2)}s`);

export function formatReport(r: RunReport): string {
  const { images: i, results: res } = r;
  const lines = [
    `run ${r.runId}: ${i.total} images, ${i.ok} ok, ${i.failed} failed, ${i.inProgress} in progress; ` +
      `results ${res.ok} ok, ${res.failed} failed${res.pending ? `, ${res.pending} pending` : ""}`,
    `  ${"stage".padEnd(9)} ${"n".padStart(6)} ${"median".padStart(8)} ${"p90".padStart(8)} ${"max".padStart(8)}`,
  ];
  for (const s of stages) {
    const d = r.durations[s];
    lines.push(`  ${s.padEnd(9)} ${String(d.n).padStart(6)} ${secs(d.medianMs).padStart(8)} ${secs(d.p90Ms).padStart(8)} ${secs(d.maxMs).padStart(8)}${d.source === "run-state" ? "  (from run state)" : ""}`);
  }
  const rate = r.imagesPerMin === null ? "-" : r.imagesPerMin.toFixed(1);
  const over = r.elapsedSeconds === null ? "" : ` over ${r.elapsedSeconds.toFixed(0)}s`;
  lines.push(`  ${rate} images/min${over}; generator calls ${r.generator.calls}, throttles ${r.generator.throttles}, rejected ${r.generator.rejected}`);
  lines.push(`  ${formatRateInForce(r.rate)}`);
  const show = (title: string, groups: FailureGroup[]) => {
    if (!groups.length) return;
    lines.push(`  ${title}:`);
    for (const g of groups.slice(0, 10)) lines.push(`    ${g.count} x [${g.stage}] ${g.reason}  (e.g. ${g.examples.slice(0, 3).join(", ")})`);
    if (groups.length > 10) lines.push(`    ... and ${groups.length - 10} more causes`);
  };
  show("image failures", r.failures.images);
  show("result failures", r.failures.results);
  return lines.join("\n");
}
