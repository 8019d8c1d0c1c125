/**
 * Run administration: `maskfleet clean` removes a run's jobs and state from Redis, never its
 * outputs; the errors and filters `report` and `retry` (src/runs/retry.ts) share.
 */
import type { Redis } from "ioredis";
import { ConfigError } from "../runtime/errors.js";
import { safeParseJobData } from "../pipeline/jobs.js";
import { keyPrefix, openQueues, stages, type Stage } from "../pipeline/queues.js";
import { RunState } from "./run-state.js";

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

export const noSuchRun = (runId: string) => new AdminError(`no run named ${runId} (maskfleet status lists the runs)`);

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
    // Every kind of job names its run; a payload that is no job of its queue belongs to none.
    const activeOf = async (stage: Stage) => (await queues[stage].getActive()).filter((job) => job && safeParseJobData(stage, job.data)?.runId === runId);
    const active = (await Promise.all(stages.map(activeOf))).flat();
    if (active.length > 0 && !opts.force) {
      throw new AdminError(
        `run ${runId} has ${active.length} active jobs (${active
          .slice(0, 3)
          .map((j) => `${j.queueName} ${j.id}`)
          .join(", ")}${active.length > 3 ? ", ..." : ""}): wait for them, stop the workers, or use --force`,
      );
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
  const lines = [
    `run ${s.runId} cleaned: ${total} jobs removed (${stages.map((st) => `${st} ${s.removed[st]}`).join(", ")}), state of ${s.forgotten} images deleted; outputs untouched`,
  ];
  if (s.left) lines.push(`  ${s.left} running jobs (or their flow parents) could not be removed: run clean again once they have finished`);
  return lines.join("\n");
}
