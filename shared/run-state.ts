/**
 * Per-image progress and run membership in Redis, next to BullMQ's queues. An image's state is
 * keyed by its deterministic id, so it is shared by every run that enqueued it; a run is a set
 * of image ids. Workers write a timestamp when a stage of an image is done; status reads them.
 *
 *   maskfleet:img:<id>        hash: name, outPrefix, genTotal, enqueuedAt, detectAt, maskAt,
 *                                   finalizeAt, failedStage, reason
 *   maskfleet:img:<id>:gen    set of generate result keys written
 *   maskfleet:run:<run>       hash: createdAt
 *   maskfleet:run:<run>:images set of image ids
 *   maskfleet:runs            zset of run ids by creation time
 */
import type { Redis } from "ioredis";
import { keyPrefix, type Stage } from "./queues.js";

const imgKey = (id: string) => `${keyPrefix}:img:${id}`;
const genKey = (id: string) => `${imgKey(id)}:gen`;
const runKey = (run: string) => `${keyPrefix}:run:${run}`;
const runImagesKey = (run: string) => `${runKey(run)}:images`;

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
}

export class RunState {
  constructor(private readonly redis: Redis) {}

  /** Adds an image to a run; returns false when the image was already known (nothing to enqueue). */
  async register(runId: string, img: { imageId: string; name: string; outPrefix: string; genTotal: number }): Promise<boolean> {
    const now = Date.now();
    const results = await this.redis
      .multi()
      .hsetnx(runKey(runId), "createdAt", String(now))
      .zadd(`${keyPrefix}:runs`, "NX", now, runId)
      .sadd(runImagesKey(runId), img.imageId)
      .hsetnx(imgKey(img.imageId), "enqueuedAt", String(now))
      .hset(imgKey(img.imageId), "name", img.name, "outPrefix", img.outPrefix, "genTotal", String(img.genTotal))
      .exec();
    const created = results?.[3]?.[1];
    return created === 1;
  }

  async stageDone(imageId: string, stage: Stage): Promise<void> {
    await this.redis.hset(imgKey(imageId), `${stage}At`, String(Date.now()));
  }

  /** Whether any stage has finished or failed this image. */
  async started(imageId: string): Promise<boolean> {
    const fields = await this.redis.hmget(imgKey(imageId), "detectAt", "failedStage");
    return fields.some((v) => v !== null);
  }

  async resultDone(imageId: string, resultKey: string): Promise<void> {
    await this.redis.sadd(genKey(imageId), resultKey);
  }

  /** The image failed for good at this stage; the first reason recorded wins. */
  async failed(imageId: string, stage: Stage, reason: string): Promise<void> {
    await this.redis
      .multi()
      .hsetnx(imgKey(imageId), "failedStage", stage)
      .hsetnx(imgKey(imageId), "reason", reason.slice(0, 2000))
      .hset(imgKey(imageId), "failedAt", String(Date.now()))
      .exec();
  }

  /** Forget a failure, e.g. before a retry. */
  async clearFailure(imageId: string): Promise<void> {
    await this.redis.hdel(imgKey(imageId), "failedStage", "reason", "failedAt");
  }

  async runExists(runId: string): Promise<boolean> {
    return (await this.redis.exists(runKey(runId))) === 1;
  }

  async runCreatedAt(runId: string): Promise<number | undefined> {
    const v = await this.redis.hget(runKey(runId), "createdAt");
    return v ? Number(v) : undefined;
  }

  async listRuns(): Promise<string[]> {
    return this.redis.zrange(`${keyPrefix}:runs`, "0", "-1");
  }

  /** Every image of a run with its progress, in a couple of pipelined round trips. */
  async images(runId: string): Promise<ImageRecord[]> {
    const ids = await this.redis.smembers(runImagesKey(runId));
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
      };
    });
  }
}

/** An image is finished when finalize wrote its manifest or it failed for good. */
export function isFinished(img: ImageRecord): boolean {
  return img.doneAt.finalize !== undefined || img.failedStage !== undefined;
}
