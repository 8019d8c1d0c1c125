/**
 * Per-image progress and run membership in Redis, next to BullMQ's queues. An image's state is
 * keyed by its deterministic id, so it is shared by every run that enqueued it; a run is a set
 * of image ids. Workers write a timestamp when a stage of an image is done; status reads them.
 *
 *   maskfleet:img:<id>        hash: name, outPrefix, genTotal, enqueuedAt, detectAt, maskAt,
 *                                   generateAt, finalizeAt, failedStage, reason, failedAt,
 *                                   refinalize (set by `maskfleet retry`, see workers/pool.ts)
 *   maskfleet:img:<id>:gen    set of generate result keys written
 *   maskfleet:run:<run>       hash: createdAt
 *   maskfleet:run:<run>:images set of image ids
 *   maskfleet:run:<run>:counters hash: generatorCalls, throttles, rejected (see workers/pool.ts)
 *   maskfleet:runs            zset of run ids by creation time
 *   maskfleet:img-changes     stream: the id of every image whose progress changed, so a watcher
 *                             re-reads only those (producer/status.ts RunWatcher); capped
 */
import type { Queue } from "bullmq";
import type { ChainableCommander, Redis } from "ioredis";
import { keyPrefix, type Stage } from "./queues.js";
import { checkRunId } from "./run-id.js";

const imgKey = (id: string) => `${keyPrefix}:img:${id}`;
const genKey = (id: string) => `${imgKey(id)}:gen`;
const rawRunKey = (run: string) => `${keyPrefix}:run:${run}`;
/** A run id reaching a key is checked (shared/run-id.ts): "foo:images" would be run foo's image set. */
const runKey = (run: string) => rawRunKey(checkRunId(run));
const runImagesKey = (run: string) => `${runKey(run)}:images`;
const runCountersKey = (run: string) => `${runKey(run)}:counters`;
const runsKey = `${keyPrefix}:runs`;
const changesKey = `${keyPrefix}:img-changes`;
/** About this many changes are kept: minutes of a busy fleet; a watcher that falls further behind reads the run again. */
const changesKept = 100_000;

/** Queues the record that this image changed, in the same transaction as the change. */
const changed = (m: ChainableCommander, imageId: string) => m.xadd(changesKey, "MAXLEN", "~", String(changesKept), "*", "i", imageId);

/** Stream ids ("ms-seq") in order. */
export function streamIdAfter(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am !== bm ? am > bm : as > bs;
}

export interface ImageRecord {
  imageId: string;
  name: string;
  outPrefix: string;
  genTotal: number;
  genDone: number;
  enqueuedAt?: number;
  /** When each stage finished this image. */
  doneAt: Partial<Record<Stage, number>>;
  failedStage?: Stage;
  reason?: string;
  failedAt?: number;
  /** Set while a finished finalize waits to run again for re-queued generate jobs (see refinalizeIfDue). */
  refinalizeSince?: number;
}

export class RunState {
  constructor(private readonly redis: Redis) {}

  /** Adds an image to a run; returns false when the image was already known (nothing to enqueue). */
  async register(runId: string, img: { imageId: string; name: string; outPrefix: string; genTotal: number }): Promise<boolean> {
    const now = Date.now();
    const multi = this.redis
      .multi()
      .hsetnx(runKey(runId), "createdAt", String(now))
      .zadd(runsKey, "NX", now, runId)
      .sadd(runImagesKey(runId), img.imageId)
      .hsetnx(imgKey(img.imageId), "enqueuedAt", String(now))
      .hset(imgKey(img.imageId), "name", img.name, "outPrefix", img.outPrefix, "genTotal", String(img.genTotal));
    const results = await changed(multi, img.imageId).exec();
    const created = results?.[3]?.[1];
    return created === 1;
  }

  async stageDone(imageId: string, stage: Stage): Promise<void> {
    await changed(this.redis.multi().hset(imgKey(imageId), `${stage}At`, String(Date.now())), imageId).exec();
  }

  /** Whether any stage has finished or failed this image. */
  async started(imageId: string): Promise<boolean> {
    const fields = await this.redis.hmget(imgKey(imageId), "detectAt", "failedStage");
    return fields.some((v) => v !== null);
  }

  async resultDone(imageId: string, resultKey: string): Promise<void> {
    await changed(this.redis.multi().sadd(genKey(imageId), resultKey), imageId).exec();
  }

  /** The image failed for good at this stage; the first reason recorded wins. */
  async failed(imageId: string, stage: Stage, reason: string): Promise<void> {
    const multi = this.redis
      .multi()
      .hsetnx(imgKey(imageId), "failedStage", stage)
      .hsetnx(imgKey(imageId), "reason", reason.slice(0, 2000))
      .hset(imgKey(imageId), "failedAt", String(Date.now()));
    await changed(multi, imageId).exec();
  }

  /** Forget a failure, e.g. before a retry. */
  async clearFailure(imageId: string): Promise<void> {
    await changed(this.redis.multi().hdel(imgKey(imageId), "failedStage", "reason", "failedAt"), imageId).exec();
  }

  /** Forget that these stages finished the image (a retried stage runs again, and so do the later ones). */
  async clearDone(imageId: string, stagesToClear: readonly Stage[]): Promise<void> {
    if (stagesToClear.length) await changed(this.redis.multi().hdel(imgKey(imageId), ...stagesToClear.map((s) => `${s}At`)), imageId).exec();
  }

  /** Marks an image whose finished finalize job must run again once its re-queued generate jobs end. */
  async markRefinalize(imageId: string): Promise<void> {
    await this.redis.hset(imgKey(imageId), "refinalize", String(Date.now()));
  }

  async needsRefinalize(imageId: string): Promise<boolean> {
    return (await this.redis.hexists(imgKey(imageId), "refinalize")) === 1;
  }

  /** Clears the mark; true for exactly one caller when several race. */
  async takeRefinalize(imageId: string): Promise<boolean> {
    return (await this.redis.hdel(imgKey(imageId), "refinalize")) === 1;
  }

  /**
   * Runs a marked image's finished finalize job again once none of its generate jobs is pending.
   * `maskfleet retry` re-queues a failed generate job with BullMQ's job.retry(), which puts it
   * back among its finalize parent's dependencies but never moves a parent that already finished
   * back to waiting; so it marks the image, and every generate pool calls this when one of its
   * jobs ends. Of several siblings ending at once, takeRefinalize lets exactly one through.
   */
  async refinalizeIfDue(finalize: Queue, imageId: string): Promise<boolean> {
    if (!(await this.needsRefinalize(imageId))) return false;
    const parent = await finalize.getJob(imageId);
    if (!parent) return false;
    const state = await parent.getState();
    if (state !== "completed" && state !== "failed") return false;
    const { unprocessed = 0 } = await parent.getDependenciesCount({ unprocessed: true });
    if (unprocessed > 0 || !(await this.takeRefinalize(imageId))) return false;
    try {
      await parent.retry(state, { resetAttemptsMade: true, resetAttemptsStarted: true });
    } catch (err) {
      await this.markRefinalize(imageId);
      throw err;
    }
    return true;
  }

  /** Adds to one of a run's counters (generator calls, throttles, ...). */
  async count(runId: string, name: string, by = 1): Promise<void> {
    await this.redis.hincrby(runCountersKey(runId), name, by);
  }

  async counters(runId: string): Promise<Record<string, number>> {
    const h = await this.redis.hgetall(runCountersKey(runId));
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Number(v)]));
  }

  /** The id of the latest image change ("0-0": none yet); changes after it are read with changesAfter. */
  async lastChangeId(): Promise<string> {
    const [last] = await this.redis.xrevrange(changesKey, "+", "-", "COUNT", 1);
    return last?.[0] ?? "0-0";
  }

  /**
   * The images changed after change `afterId`, and the id of the last change read; undefined when
   * changes after `afterId` may have been dropped by the cap (then read the run again).
   */
  async changesAfter(afterId: string): Promise<{ imageIds: Set<string>; lastId: string } | undefined> {
    const [first] = await this.redis.xrange(changesKey, "-", "+", "COUNT", 1);
    if (first && afterId !== "0-0" && streamIdAfter(first[0], afterId)) return undefined;
    const imageIds = new Set<string>();
    let lastId = afterId;
    for (;;) {
      const batch = await this.redis.xrange(changesKey, `(${lastId}`, "+", "COUNT", 10_000);
      for (const [id, fields] of batch) {
        lastId = id;
        if (fields[1]) imageIds.add(fields[1]);
      }
      if (batch.length < 10_000) return { imageIds, lastId };
    }
  }

  async imageCount(runId: string): Promise<number> {
    return this.redis.scard(runImagesKey(runId));
  }

  async runImageIds(runId: string): Promise<string[]> {
    return this.redis.smembers(runImagesKey(runId));
  }

  /** Those of `imageIds` that some run other than `runId` holds too. */
  async heldByOtherRuns(runId: string, imageIds: readonly string[]): Promise<Set<string>> {
    const held = new Set<string>();
    if (imageIds.length === 0) return held;
    for (const other of await this.listRuns()) {
      if (other === runId) continue;
      for (let at = 0; at < imageIds.length; at += 10_000) {
        const chunk = imageIds.slice(at, at + 10_000);
        // Read only, as listed: a run made before run ids were checked still holds its images.
        const member = await this.redis.smismember(`${rawRunKey(other)}:images`, ...chunk);
        member.forEach((m, i) => m === 1 && held.add(chunk[i] as string));
      }
    }
    return held;
  }

  /** Deletes a run (its hash, image set, counters, listing) and the per-image keys of `imageIds`. */
  async forgetRun(runId: string, imageIds: readonly string[]): Promise<void> {
    const multi = this.redis.multi().del(runKey(runId), runImagesKey(runId), runCountersKey(runId)).zrem(runsKey, runId);
    for (const id of imageIds) multi.del(imgKey(id), genKey(id));
    await multi.exec();
  }

  /** Records the BullMQ prefix of a run's queues when they are not the shared ones (`maskfleet run`). */
  async setQueuePrefix(runId: string, prefix: string): Promise<void> {
    await this.redis.hset(runKey(runId), "queuePrefix", prefix);
  }

  /** The BullMQ prefix of a run's queues: its own (`maskfleet run`) or the shared one. */
  async queuePrefixOf(runId: string): Promise<string> {
    return (await this.redis.hget(runKey(runId), "queuePrefix")) ?? keyPrefix;
  }

  async runExists(runId: string): Promise<boolean> {
    return (await this.redis.exists(runKey(runId))) === 1;
  }

  async runCreatedAt(runId: string): Promise<number | undefined> {
    const v = await this.redis.hget(runKey(runId), "createdAt");
    return v ? Number(v) : undefined;
  }

  async listRuns(): Promise<string[]> {
    return this.redis.zrange(runsKey, "0", "-1");
  }

  /** Every image of a run with its progress, in two round trips. */
  async images(runId: string): Promise<ImageRecord[]> {
    return this.imagesById(await this.redis.smembers(runImagesKey(runId)));
  }

  /** These images with their progress, in one pipelined round trip. */
  async imagesById(ids: readonly string[]): Promise<ImageRecord[]> {
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(imgKey(id)).scard(genKey(id));
    const replies = (await pipe.exec()) ?? [];
    return ids.map((imageId, i) => {
      const h = (replies[2 * i]?.[1] ?? {}) as Record<string, string>;
      const genDone = Number(replies[2 * i + 1]?.[1] ?? 0);
      const num = (k: string) => (h[k] ? Number(h[k]) : undefined);
      const doneAt: Partial<Record<Stage, number>> = {};
      for (const stage of ["detect", "mask", "generate", "finalize"] as const) {
        const t = num(`${stage}At`);
        if (t !== undefined) doneAt[stage] = t;
      }
      return {
        imageId,
        name: h.name ?? imageId,
        outPrefix: h.outPrefix ?? "",
        genTotal: Number(h.genTotal ?? 0),
        genDone,
        enqueuedAt: num("enqueuedAt"),
        doneAt,
        failedStage: h.failedStage as Stage | undefined,
        reason: h.reason,
        failedAt: num("failedAt"),
        refinalizeSince: num("refinalize"),
      };
    });
  }
}

/** An image is finished when finalize wrote its manifest or it failed for good. */
export function isFinished(img: ImageRecord): boolean {
  return img.doneAt.finalize !== undefined || img.failedStage !== undefined;
}
