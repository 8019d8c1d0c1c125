/**
 * A run's progress read from its compact state (src/runs/run-state.ts): done/total per stage,
 * failures with reasons, images/min and ETA, plus BullMQ's own counts per queue. A few round
 * trips whatever the run's size.
 */
import type { Redis } from "ioredis";
import cliProgress from "cli-progress";
import { recordRun } from "../runtime/metrics.js";
import { openQueues, stages, type Stage } from "../pipeline/queues.js";
import { RunState, type RunInfo, type RunProgress } from "./run-state.js";

/** Failures status lists (the run's causes of failure are in `maskfleet report`). */
const failuresShown = 50;

export interface RunStatus {
  runId: string;
  /** A producer is still adding the run's inputs (or stopped before it finished: resume it with `enqueue --run`); total grows until it is done. */
  listing: boolean;
  total: number;
  finished: number;
  succeeded: number;
  failed: number;
  /** Held for review (mask quality below minMaskQuality): finished, not generated. */
  review: number;
  /** detect, mask, finalize: images; generate: results. */
  stages: Record<Stage, { done: number; total: number }>;
  /** Up to 50 failed images (and images with failed results), with the stage and reason. */
  failures: { name: string; stage: string; reason: string }[];
  imagesPerMin: number | null;
  etaSeconds: number | null;
  elapsedSeconds: number;
  queues: Record<Stage, Record<string, number>>;
}

async function infoOf(state: RunState, runId: string): Promise<RunInfo> {
  const info = await state.info(runId);
  if (!info) throw new Error(`no run named ${runId} (maskfleet status lists the runs)`);
  return info;
}

export async function runStatus(redis: Redis, runId: string, withQueues = true): Promise<RunStatus> {
  const state = new RunState(redis);
  const info = await infoOf(state, runId);
  const [progress, failures] = await Promise.all([state.progress(runId), state.failures(runId, failuresShown)]);
  const shown = failures.map((f) => ({ name: f.name, stage: f.review ? "review" : f.stage, reason: f.reason }));
  return summarize(runId, info, progress, shown, withQueues ? await queueCounts(redis, info.queuePrefix) : emptyCounts());
}

export function summarize(runId: string, info: RunInfo, p: RunProgress, failures: RunStatus["failures"], queues: RunStatus["queues"]): RunStatus {
  const total = p.images;
  const stageCounts: RunStatus["stages"] = {
    detect: { done: p.detect, total },
    mask: { done: p.mask, total },
    generate: { done: p.resultsDone, total: p.results },
    finalize: { done: p.finalize, total },
  };
  // A finished run's clock stops at its last finished image: its rate and elapsed time stay what they were.
  const done = !info.listing && total > 0 && p.finished === total && info.lastFinishAt !== undefined;
  const end = done ? Math.max(info.lastFinishAt ?? 0, info.createdAt) : Date.now();
  const elapsed = Math.max(1, (end - info.createdAt) / 1000);
  const rate = p.finished > 0 && info.lastFinishAt !== undefined ? (p.finished / elapsed) * 60 : null;
  const remaining = total - p.finished;
  return {
    runId,
    listing: info.listing,
    total,
    finished: p.finished,
    succeeded: p.ok,
    failed: p.failed,
    review: p.review,
    stages: stageCounts,
    failures,
    imagesPerMin: rate,
    // While inputs are still being added the total is not known yet: no ETA.
    etaSeconds: info.listing ? null : rate && remaining > 0 ? (remaining / rate) * 60 : remaining === 0 ? 0 : null,
    elapsedSeconds: elapsed,
    queues,
  };
}

function emptyCounts(): RunStatus["queues"] {
  return Object.fromEntries(stages.map((s) => [s, {}])) as RunStatus["queues"];
}

/** Job counts of the run's queues (its own for `maskfleet run`, else the shared ones, which all runs share). */
async function queueCounts(redis: Redis, queuePrefix: string): Promise<RunStatus["queues"]> {
  const queues = openQueues(redis, queuePrefix);
  try {
    const counts = await Promise.all(stages.map((s) => queues[s].getJobCounts("waiting", "active", "delayed", "failed", "waiting-children", "prioritized")));
    return Object.fromEntries(stages.map((s, i) => [s, counts[i] ?? {}])) as RunStatus["queues"];
  } finally {
    await Promise.all(Object.values(queues).map((q) => q.close()));
  }
}

export function formatStatus(s: RunStatus): string {
  const held = s.review ? `, ${s.review} held for review` : "";
  const lines = [`run ${s.runId}: ${s.finished}/${s.total} images finished (${s.succeeded} ok, ${s.failed} failed${held})${s.listing ? "; inputs still being added" : ""}`];
  for (const stage of stages) {
    const c = s.stages[stage];
    const q = s.queues[stage];
    const qs = Object.entries(q)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    lines.push(`  ${stage.padEnd(9)} ${String(c.done).padStart(6)}/${c.total}${qs ? `   queue: ${qs}` : ""}`);
  }
  const rate = s.imagesPerMin === null ? "-" : s.imagesPerMin.toFixed(1);
  lines.push(`  ${rate} images/min, elapsed ${formatSeconds(s.elapsedSeconds)}, ETA ${s.etaSeconds === null ? "-" : formatSeconds(s.etaSeconds)}`);
  if (s.failures.length) {
    lines.push(`  failures:`);
    for (const f of s.failures) lines.push(`    ${f.name} [${f.stage}]: ${f.reason}`);
    if (s.failed + s.review > s.failures.length) lines.push(`    ... and more: \`maskfleet report ${s.runId}\` groups them by cause`);
  }
  return lines.join("\n");
}

function formatSeconds(sec: number): string {
  const s = Math.round(sec);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
      : `${s}s`;
}

/** Polls until every image of the run is finished; draws a progress bar on a terminal and keeps the run's metrics gauges current. */
export async function waitForRun(redis: Redis, runId: string, opts: { intervalMs?: number; progress?: boolean; timeoutMs?: number } = {}): Promise<RunStatus> {
  const interval = opts.intervalMs ?? 500;
  const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
  const bar = opts.progress
    ? new cliProgress.SingleBar({ format: "{bar} {value}/{total} images | {rate} img/min | ETA {etaText} | failed {failed}", hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  let status = await runStatus(redis, runId, false);
  recordRun(status);
  bar?.start(status.total, status.finished, { rate: "-", etaText: "-", failed: 0 });
  try {
    while (status.listing || status.finished < status.total) {
      if (Date.now() > deadline) throw new Error(`run ${runId} did not finish in time`);
      await new Promise((r) => setTimeout(r, interval));
      status = await runStatus(redis, runId, false);
      recordRun(status);
      bar?.setTotal(status.total);
      bar?.update(status.finished, {
        rate: status.imagesPerMin?.toFixed(1) ?? "-",
        etaText: status.etaSeconds === null ? "-" : formatSeconds(status.etaSeconds),
        failed: status.failed,
      });
    }
  } finally {
    bar?.stop();
  }
  return status;
}
