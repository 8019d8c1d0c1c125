/**
 * A run's progress read from Redis: done/total per stage, failures with reasons, images/min
 * and ETA from the finish times, plus BullMQ's own counts per queue.
 */
import type { Redis } from "ioredis";
import cliProgress from "cli-progress";
import { recordRun } from "../shared/metrics.js";
import { openQueues, stages, type Stage } from "../shared/queues.js";
import { RunState, isFinished, type ImageRecord } from "../shared/run-state.js";

export interface RunStatus {
  runId: string;
  total: number;
  finished: number;
  succeeded: number;
  failed: number;
  stages: Record<Stage, { done: number; total: number }>;
  failures: { name: string; stage: string; reason: string }[];
  imagesPerMin: number | null;
  etaSeconds: number | null;
  elapsedSeconds: number;
  queues: Record<Stage, Record<string, number>>;
}

async function createdAtOf(state: RunState, runId: string): Promise<number> {
  const createdAt = await state.runCreatedAt(runId);
  if (createdAt === undefined) throw new Error(`no run named ${runId} (maskfleet status lists the runs)`);
  return createdAt;
}

export async function runStatus(redis: Redis, runId: string, withQueues = true): Promise<RunStatus> {
  const state = new RunState(redis);
  const createdAt = await createdAtOf(state, runId);
  const images = await state.images(runId);
  return summarize(runId, createdAt, images, withQueues ? await queueCounts(redis, await state.queuePrefixOf(runId)) : emptyCounts());
}

/**
 * Follows a run's status at a cost that grows with what changed, not with the run's size: after
 * one full read, a poll reads the image-change stream (RunState) and re-reads only this run's
 * changed images. It reads the run in full again when images joined it, when changes may have been
 * dropped, and to confirm a run that looks finished.
 */
export class RunWatcher {
  private readonly state: RunState;
  private records = new Map<string, ImageRecord>();
  private lastChange: string | undefined;

  constructor(
    redis: Redis,
    private readonly runId: string,
  ) {
    this.state = new RunState(redis);
  }

  private async readAll(): Promise<void> {
    // The change id first: changes made while the run is read are read again next time, never missed.
    this.lastChange = await this.state.lastChangeId();
    this.records = new Map((await this.state.images(this.runId)).map((i) => [i.imageId, i]));
  }

  async poll(): Promise<RunStatus> {
    const createdAt = await createdAtOf(this.state, this.runId);
    const changes = this.lastChange === undefined ? undefined : await this.state.changesAfter(this.lastChange);
    let fresh = false;
    if (!changes || (await this.state.imageCount(this.runId)) !== this.records.size) {
      await this.readAll();
      fresh = true;
    } else {
      this.lastChange = changes.lastId;
      const mine = [...changes.imageIds].filter((id) => this.records.has(id));
      for (const img of await this.state.imagesById(mine)) this.records.set(img.imageId, img);
    }
    if (!fresh && [...this.records.values()].every(isFinished)) await this.readAll();
    return summarize(this.runId, createdAt, [...this.records.values()], emptyCounts());
  }
}

export function summarize(runId: string, createdAt: number, images: ImageRecord[], queues: RunStatus["queues"]): RunStatus {
  const total = images.length;
  const failedImgs = images.filter((i) => i.failedStage !== undefined);
  const finishedImgs = images.filter(isFinished);
  const stageCounts = Object.fromEntries(
    stages.map((s) => {
      if (s === "generate") {
        return [s, { done: images.reduce((n, i) => n + i.genDone, 0), total: images.reduce((n, i) => n + i.genTotal, 0) }];
      }
      return [s, { done: images.filter((i) => i.doneAt[s] !== undefined).length, total }];
    }),
  ) as RunStatus["stages"];
  // When each finished image finished: its finalize, or its failure.
  const finishTimes = finishedImgs.map((i) => i.doneAt.finalize ?? i.failedAt ?? 0).filter((t) => t > 0);
  // A finished run's clock stops at its last finished image: its rate and elapsed time stay what they were.
  const done = total > 0 && finishedImgs.length === total && finishTimes.length > 0;
  const end = done ? finishTimes.reduce((a, b) => Math.max(a, b), createdAt) : Date.now();
  const elapsed = Math.max(1, (end - createdAt) / 1000);
  const rate = finishTimes.length > 0 ? (finishedImgs.length / elapsed) * 60 : null;
  const remaining = total - finishedImgs.length;
  return {
    runId,
    total,
    finished: finishedImgs.length,
    succeeded: finishedImgs.length - failedImgs.length,
    failed: failedImgs.length,
    stages: stageCounts,
    failures: failedImgs.map((i) => ({ name: i.name, stage: i.failedStage ?? "", reason: i.reason ?? "" })),
    imagesPerMin: rate,
    etaSeconds: rate && remaining > 0 ? (remaining / rate) * 60 : remaining === 0 ? 0 : null,
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
  const lines = [`run ${s.runId}: ${s.finished}/${s.total} images finished (${s.succeeded} ok, ${s.failed} failed)`];
  for (const stage of stages) {
    const c = s.stages[stage];
    const q = s.queues[stage];
    const qs = Object.entries(q).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ");
    lines.push(`  ${stage.padEnd(9)} ${String(c.done).padStart(6)}/${c.total}${qs ? `   queue: ${qs}` : ""}`);
  }
  const rate = s.imagesPerMin === null ? "-" : s.imagesPerMin.toFixed(1);
  lines.push(`  ${rate} images/min, elapsed ${formatSeconds(s.elapsedSeconds)}, ETA ${s.etaSeconds === null ? "-" : formatSeconds(s.etaSeconds)}`);
  if (s.failures.length) {
    lines.push(`  failures:`);
    for (const f of s.failures.slice(0, 50)) lines.push(`    ${f.name} [${f.stage}]: ${f.reason}`);
    if (s.failures.length > 50) lines.push(`    ... and ${s.failures.length - 50} more`);
  }
  return lines.join("\n");
}

function formatSeconds(sec: number): string {
  const s = Math.round(sec);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** Polls until every image of the run is finished; draws a progress bar on a terminal and keeps the run's metrics gauges current. */
export async function waitForRun(redis: Redis, runId: string, opts: { intervalMs?: number; progress?: boolean; timeoutMs?: number } = {}): Promise<RunStatus> {
  const interval = opts.intervalMs ?? 500;
  const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
  const bar = opts.progress
    ? new cliProgress.SingleBar({ format: "{bar} {value}/{total} images | {rate} img/min | ETA {etaText} | failed {failed}", hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  const watcher = new RunWatcher(redis, runId);
  let status = await watcher.poll();
  recordRun(status);
  bar?.start(status.total, status.finished, { rate: "-", etaText: "-", failed: 0 });
  try {
    while (status.finished < status.total) {
      if (Date.now() > deadline) throw new Error(`run ${runId} did not finish in time`);
      await new Promise((r) => setTimeout(r, interval));
      status = await watcher.poll();
      recordRun(status);
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
