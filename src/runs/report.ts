/**
 * `maskfleet report`: a run's outcome as JSON: image and result counts, failures grouped by
 * cause, per-stage durations, throughput and the generator's calls, throttles and rejections.
 * Everything comes from the run's compact state (src/runs/run-state.ts): counters, the causes of
 * failure, duration histograms; its cost does not grow with the run's size.
 */
import type { Redis } from "ioredis";
import { stages, type Stage } from "../pipeline/queues.js";
import { RunState, bucketUpperMs, type ReasonGroup } from "./run-state.js";
import { AdminError } from "./admin.js";
import { formatRateInForce, rateInForce, type RateInForce } from "../rate/rate-in-force.js";

export interface StageDurations {
  /** Jobs measured (completed, and failed for good). */
  n: number;
  /** From a histogram of four buckets per doubling: the bucket's upper bound, at most about 19% above the true value. */
  medianMs: number | null;
  p90Ms: number | null;
  /** Exact. */
  maxMs: number | null;
}

export type FailureGroup = Omit<ReasonGroup, "kind">;

export interface RunReport {
  runId: string;
  createdAt: string;
  reportedAt: string;
  images: { total: number; finished: number; ok: number; failed: number; review: number; inProgress: number };
  /**
   * Images held for review (mask quality below minMaskQuality), lowest quality first, up to
   * reviewListed: look at their mask.png (fix it by hand if needed), then `maskfleet retry RUN
   * --stage mask` sends them on to generation.
   */
  review: { name: string; imageId: string; quality: number; bar: number }[];
  /**
   * Generate results (prompt x seed): ok = in the output; failed = missing from a finished
   * image's manifest; pending = of images still in progress; notAttempted = of images that
   * failed before generate.
   */
  results: { ok: number; failed: number; pending: number; notAttempted: number };
  failures: {
    /** Images that failed for good, by stage and reason. */
    images: FailureGroup[];
    /** Failed results of images that finished, by reason. */
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

/** Nearest-rank percentile of a histogram (bucket -> count), as the bucket's upper bound. */
function percentile(buckets: [number, number][], total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [bucket, count] of buckets) {
    seen += count;
    if (seen >= rank) return Math.round(bucketUpperMs(bucket));
  }
  return null;
}

/** Images held for review that report lists. */
const reviewListed = 1000;

/** The run's images held for review, lowest quality first (read only when there are some). */
async function heldForReview(state: RunState, runId: string, count: number): Promise<RunReport["review"]> {
  if (count === 0) return [];
  const held: RunReport["review"] = [];
  for await (const r of state.failureRecords(runId)) if (r.review) held.push({ name: r.name, imageId: r.imageId, quality: r.review.quality, bar: r.review.bar });
  return held.sort((a, b) => a.quality - b.quality).slice(0, reviewListed);
}

export async function runReport(redis: Redis, runId: string): Promise<RunReport> {
  const state = new RunState(redis);
  const info = await state.info(runId);
  if (!info) throw new AdminError(`no run named ${runId} (maskfleet status lists the runs)`);
  const [p, counters, reasons, histograms] = await Promise.all([state.progress(runId), state.counters(runId), state.reasons(runId), state.durations(runId)]);

  const durations = Object.fromEntries(
    stages.map((s) => {
      const buckets = [...histograms[s].buckets].sort(([a], [b]) => a - b);
      const n = buckets.reduce((sum, [, c]) => sum + c, 0);
      const maxMs = histograms[s].maxMs;
      // The top bucket's bound may pass the exact maximum: never report a percentile above it.
      const capped = (v: number | null) => (v === null || maxMs === null ? v : Math.min(v, maxMs));
      return [s, { n, medianMs: capped(percentile(buckets, n, 0.5)), p90Ms: capped(percentile(buckets, n, 0.9)), maxMs: n ? maxMs : null }];
    }),
  ) as Record<Stage, StageDurations>;

  const pending = Math.max(0, p.results - p.resultsDone - p.resultsFailed - p.resultsNotAttempted);
  const group = (kind: ReasonGroup["kind"]) => reasons.filter((g) => g.kind === kind).map(({ kind: _, ...g }) => g);
  const elapsedSeconds = info.lastFinishAt !== undefined ? Math.max(0.001, (info.lastFinishAt - info.createdAt) / 1000) : null;
  return {
    runId,
    createdAt: new Date(info.createdAt).toISOString(),
    reportedAt: new Date().toISOString(),
    images: { total: p.images, finished: p.finished, ok: p.ok, failed: p.failed, review: p.review, inProgress: p.images - p.finished },
    review: await heldForReview(state, runId, p.review),
    results: { ok: p.resultsDone, failed: p.resultsFailed, pending, notAttempted: p.resultsNotAttempted },
    failures: { images: group("image"), results: group("result") },
    durations,
    imagesPerMin: elapsedSeconds !== null ? (p.finished / elapsedSeconds) * 60 : null,
    elapsedSeconds,
    generator: { calls: counters.generatorCalls ?? 0, throttles: counters.throttles ?? 0, rejected: counters.rejected ?? 0 },
    rate: await rateInForce(redis),
  };
}

const secs = (ms: number | null) => (ms === null ? "-" : `${(ms / 1000).toFixed(2)}s`);

export function formatReport(r: RunReport): string {
  const { images: i, results: res } = r;
  const lines = [
    `run ${r.runId}: ${i.total} images, ${i.ok} ok, ${i.failed} failed${i.review ? `, ${i.review} held for review` : ""}, ${i.inProgress} in progress; ` +
      `results ${res.ok} ok, ${res.failed} failed${res.pending ? `, ${res.pending} pending` : ""}`,
    `  ${"stage".padEnd(9)} ${"n".padStart(6)} ${"median".padStart(8)} ${"p90".padStart(8)} ${"max".padStart(8)}`,
  ];
  for (const s of stages) {
    const d = r.durations[s];
    lines.push(`  ${s.padEnd(9)} ${String(d.n).padStart(6)} ${secs(d.medianMs).padStart(8)} ${secs(d.p90Ms).padStart(8)} ${secs(d.maxMs).padStart(8)}`);
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
  if (r.review.length) {
    lines.push(`  held for review (mask quality below the bar; \`maskfleet retry ${r.runId} --stage mask\` sends them on):`);
    for (const h of r.review.slice(0, 20)) lines.push(`    ${h.name}: quality ${h.quality} < ${h.bar}`);
    if (r.images.review > 20) lines.push(`    ... and ${r.images.review - 20} more (the JSON report lists up to ${reviewListed})`);
  }
  return lines.join("\n");
}
