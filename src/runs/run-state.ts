/**
 * A run's state in Redis, compact enough for catalogs of millions of images: counters per stage,
 * one small field per image, failures with their reasons, a duration histogram per stage. A run
 * owns its state (and its jobs, see jobIdOf): nothing is shared with other runs, so `clean` drops
 * a run's keys without looking at any other run. Finished jobs leave BullMQ as soon as their
 * outcome is recorded here (src/pipeline/queues.ts), so a finished image costs one field.
 *
 *   maskfleet:runs                  zset of run ids by creation time
 *   maskfleet:run-seq               counter: each run's tag (a short number in its job ids)
 *   maskfleet:run:<run>             hash: createdAt, tag, settings:<id> (JSON: image options and
 *                                   output, stored once per run and option set; jobs name the id),
 *                                   queuePrefix (`maskfleet run`'s own queues), listing (set while
 *                                   a producer adds inputs), listedAt, cursor + cursorOf (the
 *                                   producer's checkpoint), lastFinishAt
 *   maskfleet:run:<run>:images      hash: image id -> state (ImageState bits, failed stage)
 *   maskfleet:run:<run>:progress    hash: images, results (expected), detect, mask, finalize,
 *                                   resultsDone, resultsFailed, finished, ok, failed, review
 *   maskfleet:run:<run>:gen:<id>    set of an unfinished image's results done (prompt x seed index)
 *   maskfleet:run:<run>:failed      hash: image id -> FailureRecord (JSON), up to failedKept (images
 *                                   held for review too: their record says `review`)
 *   maskfleet:run:<run>:reasons     hash: "<stage>\t<reason>" -> count, up to reasonsKept causes
 *   maskfleet:run:<run>:examples    hash: "<stage>\t<reason>" -> JSON list of up to 5 image names
 *   maskfleet:run:<run>:durations   hash: "<stage>:<bucket>" -> jobs, "<stage>:max" -> ms
 *   maskfleet:run:<run>:counters    hash: generatorCalls, throttles, rejected (src/fleet/pool.ts)
 *
 * Every change is one Lua script, exactly once per image and stage: a stage counted once stays
 * counted when a stalled job runs again, and an image finishes once.
 */
import type { Redis } from "ioredis";
import { imageFinished } from "../runtime/metrics.js";
import { keyPrefix, stages, type Stage } from "../pipeline/queues.js";
import { checkRunId } from "../pipeline/run-id.js";
import { sha256Hex, stableJson } from "../pipeline/hash.js";

const rawRunKey = (run: string) => `${keyPrefix}:run:${run}`;
/** A run id reaching a key is checked (src/pipeline/run-id.ts): "foo:images" would be run foo's image set. */
const runKey = (run: string) => rawRunKey(checkRunId(run));
const runsKey = `${keyPrefix}:runs`;
const runKeys = (run: string) => {
  const base = runKey(run);
  return {
    run: base,
    images: `${base}:images`,
    progress: `${base}:progress`,
    failed: `${base}:failed`,
    reasons: `${base}:reasons`,
    examples: `${base}:examples`,
    durations: `${base}:durations`,
    counters: `${base}:counters`,
  };
};

/** Failure records kept per run (for `retry` and status); beyond, failures are counted and grouped only. */
const failedKept = 100_000;
/** Distinct causes kept per run and stage; beyond, a cause is counted as "(other reasons)". */
const reasonsKept = 1000;
/** A reason as recorded: long enough to say what happened, short enough for a million of them. */
const reasonLength = 500;

/** An image's state: stages done, finished, failed (and at which stage: bits 5-6), held for review. */
const ImageState = { detect: 1, mask: 2, finalize: 4, finished: 8, failed: 16, review: 128 } as const;
const stageIndex = (stage: Stage) => stages.indexOf(stage);

/** What a run keeps of a failure: enough to show it, group it, and run it again (`maskfleet retry`). */
export interface FailureRecord {
  /** The stage that failed (for an image whose results partly failed: generate). */
  stage: Stage;
  reason: string;
  name: string;
  /** Attempts made before it failed for good (image failures). */
  attempts?: number;
  /** The image as queued (src/pipeline/jobs.ts queuedImageSchema): `retry` makes the failed stage's job of it again. */
  job: unknown;
  /** Generate failures: the prompt variables, and the results that failed (the others are in the store). */
  promptVars?: { label: string; color: string };
  failedResults?: { promptIndex: number; seed: number }[];
  /** Results made, for an image that finished with some of them failed. */
  okResults?: number;
  /** Results never attempted: the image failed before generate. */
  notAttempted?: number;
  /** The causes this failure was counted under (reasons hash), with counts: `retry` takes them back. */
  causes: [string, number][];
  /** Not a failure: the mask stage held the image for review, its mask quality below minMaskQuality. */
  review?: { quality: number; bar: number };
}

/** One cause of failures: how many images (or results), with a few example image names. */
export interface ReasonGroup {
  /** image: images that failed for good at `stage`; result: failed results (generate) of images that finished. */
  kind: "image" | "result";
  stage: Stage;
  reason: string;
  count: number;
  examples: string[];
}

export interface RunProgress {
  images: number;
  /** Generate results expected (prompts x seeds of every image). */
  results: number;
  detect: number;
  mask: number;
  finalize: number;
  resultsDone: number;
  resultsFailed: number;
  resultsNotAttempted: number;
  finished: number;
  ok: number;
  failed: number;
  /** Finished without generation: held for review (mask quality below the bar). */
  review: number;
}

export interface RunInfo {
  createdAt: number;
  listing: boolean;
  lastFinishAt?: number;
  queuePrefix: string;
}

/** An option set of a run and its output, written by its producer, read by every worker (cached: they never change). */
export interface RunSettings {
  options: unknown;
  out: string;
}

/** Per image, for tests and tools that look at one run's images (O(images): never on a hot path). */
export interface ImageRecord {
  imageId: string;
  done: Stage[];
  finished: boolean;
  failedStage?: Stage;
  /** From the failure record, when kept. */
  reason?: string;
  name?: string;
}

/** Duration histogram buckets: four per doubling (about 19% wide), from 1 ms. */
const durationBucket = (ms: number) => Math.max(0, Math.floor(Math.log2(Math.max(1, ms)) * 4));
export const bucketUpperMs = (bucket: number) => 2 ** ((bucket + 1) / 4);

const lua = {
  /** ARGV: prefix, run, now, then id + genTotal per image. Returns 1 new, 2 known not started, 0 started or finished. */
  register: `
local run = ARGV[1] .. ':run:' .. ARGV[2]
redis.call('HSETNX', run, 'createdAt', ARGV[3])
redis.call('ZADD', ARGV[1] .. ':runs', 'NX', ARGV[3], ARGV[2])
local out = {}
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', run .. ':images', ARGV[i], 0) == 1 then
    redis.call('HINCRBY', run .. ':progress', 'images', 1)
    redis.call('HINCRBY', run .. ':progress', 'results', ARGV[i + 1])
    out[#out + 1] = 1
  elseif tonumber(redis.call('HGET', run .. ':images', ARGV[i])) == 0 then
    out[#out + 1] = 2
  else
    out[#out + 1] = 0
  end
end
return out`,
  /** ARGV: prefix, run, id, stage bit, stage name. 1 when counted now. */
  stageDone: `
local run = ARGV[1] .. ':run:' .. ARGV[2]
local v = tonumber(redis.call('HGET', run .. ':images', ARGV[3]))
local b = tonumber(ARGV[4])
if not v or bit.band(v, 8) ~= 0 or bit.band(v, b) ~= 0 then return 0 end
redis.call('HSET', run .. ':images', ARGV[3], bit.bor(v, b))
redis.call('HINCRBY', run .. ':progress', ARGV[5], 1)
return 1`,
  /** ARGV: prefix, run, id, result index. 1 when counted now. */
  resultDone: `
local run = ARGV[1] .. ':run:' .. ARGV[2]
local v = tonumber(redis.call('HGET', run .. ':images', ARGV[3]))
if not v or bit.band(v, 8) ~= 0 then return 0 end
if redis.call('SADD', run .. ':gen:' .. ARGV[3], ARGV[4]) == 0 then return 0 end
redis.call('HINCRBY', run .. ':progress', 'resultsDone', 1)
return 1`,
  /**
   * ARGV: prefix, run, id, now, state bits to add, outcome ("ok" | "failed" | "review"), results failed,
   * results not attempted, failure record JSON ("" = none), failedKept, reasonsKept, name, then
   * cause + count per cause. 1 when the image finished now.
   */
  finish: `
local run = ARGV[1] .. ':run:' .. ARGV[2]
local id = ARGV[3]
local v = tonumber(redis.call('HGET', run .. ':images', id))
if not v or bit.band(v, 8) ~= 0 then return 0 end
local add = tonumber(ARGV[5])
-- The stages its outcome implies done are counted if their own report was lost (a worker killed
-- between handing on and reporting, whose retry found the image finished).
for b, stage in pairs({ [1] = 'detect', [2] = 'mask', [4] = 'finalize' }) do
  if bit.band(add, b) ~= 0 and bit.band(v, b) == 0 then redis.call('HINCRBY', run .. ':progress', stage, 1) end
end
redis.call('HSET', run .. ':images', id, bit.bor(v, add, 8))
redis.call('HINCRBY', run .. ':progress', 'finished', 1)
redis.call('HINCRBY', run .. ':progress', ARGV[6], 1)
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', run .. ':progress', 'resultsFailed', ARGV[7]) end
if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', run .. ':progress', 'resultsNotAttempted', ARGV[8]) end
redis.call('DEL', run .. ':gen:' .. id)
local last = tonumber(redis.call('HGET', run, 'lastFinishAt') or '0')
if tonumber(ARGV[4]) > last then redis.call('HSET', run, 'lastFinishAt', ARGV[4]) end
if ARGV[9] ~= '' and (redis.call('HLEN', run .. ':failed') < tonumber(ARGV[10]) or redis.call('HEXISTS', run .. ':failed', id) == 1) then
  redis.call('HSET', run .. ':failed', id, ARGV[9])
end
for i = 13, #ARGV, 2 do
  local cause = ARGV[i]
  if redis.call('HEXISTS', run .. ':reasons', cause) == 0 and redis.call('HLEN', run .. ':reasons') >= tonumber(ARGV[11]) then
    cause = string.match(cause, '^[^\\t]*') .. '\\t(other reasons)'
  end
  redis.call('HINCRBY', run .. ':reasons', cause, ARGV[i + 1])
  local ex = cjson.decode(redis.call('HGET', run .. ':examples', cause) or '[]')
  if #ex < 5 then
    local seen = false
    for _, n in ipairs(ex) do if n == ARGV[12] then seen = true end end
    if not seen then ex[#ex + 1] = ARGV[12]; redis.call('HSET', run .. ':examples', cause, cjson.encode(ex)) end
  end
end
return 1`,
  /**
   * Undoes a finished image's outcome before `retry` adds it again. ARGV: prefix, run, id, state
   * to set, then progress field + amount to subtract, ..., "--", then cause + count per cause.
   * 1 when reopened (its failure record was there).
   */
  reopen: `
local run = ARGV[1] .. ':run:' .. ARGV[2]
local id = ARGV[3]
if redis.call('HDEL', run .. ':failed', id) == 0 then return 0 end
redis.call('HSET', run .. ':images', id, ARGV[4])
redis.call('DEL', run .. ':gen:' .. id)
local i = 5
while ARGV[i] ~= '--' do
  redis.call('HINCRBY', run .. ':progress', ARGV[i], -tonumber(ARGV[i + 1]))
  i = i + 2
end
for j = i + 1, #ARGV, 2 do
  if redis.call('HINCRBY', run .. ':reasons', ARGV[j], -tonumber(ARGV[j + 1])) <= 0 then redis.call('HDEL', run .. ':reasons', ARGV[j]) end
end
return 1`,
  /** ARGV: prefix, run, stage, bucket, ms. */
  duration: `
local key = ARGV[1] .. ':run:' .. ARGV[2] .. ':durations'
redis.call('HINCRBY', key, ARGV[3] .. ':' .. ARGV[4], 1)
local max = tonumber(redis.call('HGET', key, ARGV[3] .. ':max') or '-1')
if tonumber(ARGV[5]) > max then redis.call('HSET', key, ARGV[3] .. ':max', ARGV[5]) end
return 1`,
  /** ARGV: prefix, run, now, settings id, settings JSON. The run's tag. */
  create: `
local run = ARGV[1] .. ':run:' .. ARGV[2]
redis.call('HSETNX', run, 'createdAt', ARGV[3])
redis.call('ZADD', ARGV[1] .. ':runs', 'NX', ARGV[3], ARGV[2])
redis.call('HSETNX', run, 'settings:' .. ARGV[4], ARGV[5])
local tag = redis.call('HGET', run, 'tag')
if not tag then
  tag = tostring(redis.call('INCR', ARGV[1] .. ':run-seq'))
  redis.call('HSET', run, 'tag', tag)
end
return tag`,
};

const num = (v: string | null | undefined) => (v === null || v === undefined ? 0 : Number(v));

/** The cause under which an image's failure is counted: its stage and its reason as grouped (src/runs/reasons.ts normalises it). */
export const causeOf = (stage: Stage, reason: string) => `${stage}\t${reason.slice(0, reasonLength)}`;
/** The cause under which a failed result (one prompt x seed of an image that finished) is counted. */
export const resultCauseOf = (reason: string) => `result\t${reason.slice(0, reasonLength)}`;

export class RunState {
  constructor(private readonly redis: Redis) {}

  private eval(script: string, ...args: (string | number)[]): Promise<unknown> {
    return this.redis.eval(script, 0, keyPrefix, ...args.map(String));
  }

  /**
   * Creates the run (or finds it) with this option set and output, stored once: its jobs name the
   * returned settings id. Returns the run's tag too (see jobIdOf).
   */
  async create(runId: string, settings: RunSettings): Promise<{ tag: string; settingsId: string }> {
    checkRunId(runId);
    const json = stableJson(settings);
    const settingsId = sha256Hex(json).slice(0, 12);
    const tag = String(await this.eval(lua.create, runId, Date.now(), settingsId, json));
    return { tag, settingsId };
  }

  /** An option set of the run; undefined when the run does not exist (or was cleaned). */
  async settings(runId: string, settingsId: string): Promise<RunSettings | undefined> {
    const json = await this.redis.hget(runKey(runId), `settings:${settingsId}`);
    return json ? (JSON.parse(json) as RunSettings) : undefined;
  }

  /** The run's tag (its jobs' ids begin with it); undefined when there is no such run. */
  async tag(runId: string): Promise<string | undefined> {
    return (await this.redis.hget(runKey(runId), "tag")) ?? undefined;
  }

  /** Adds images to a run in one round trip: new to the run, known but not started (its job may be missing), or under way / finished. */
  async register(runId: string, imgs: readonly { imageId: string; genTotal: number }[]): Promise<Registered[]> {
    checkRunId(runId);
    if (imgs.length === 0) return [];
    const replies = (await this.eval(lua.register, runId, Date.now(), ...imgs.flatMap((i) => [i.imageId, i.genTotal]))) as number[];
    return replies.map((r) => (r === 1 ? "new" : r === 2 ? "not-started" : "started"));
  }

  /** A stage finished the image (counted once; nothing once the image finished). */
  async stageDone(runId: string, imageId: string, stage: Exclude<Stage, "generate">): Promise<void> {
    await this.eval(lua.stageDone, runId, imageId, ImageState[stage], stage);
  }

  /** One of the image's results is in the store (counted once). */
  async resultDone(runId: string, imageId: string, resultIndex: number): Promise<void> {
    await this.eval(lua.resultDone, runId, imageId, resultIndex);
  }

  /**
   * The image finished: finalize wrote its manifest (some of its results may have failed), a
   * stage failed it for good (`stage`), or the mask stage held it for review. Its causes are
   * counted in the run's reasons; a record, when given, keeps it for `retry` and status.
   * Recorded once; the image's results set goes.
   */
  async finished(
    runId: string,
    imageId: string,
    o: { outcome: "ok" | "failed" | "review"; stage: Stage; name: string; failedResults: number; notAttempted?: number; causes: [string, number][]; record?: FailureRecord },
  ): Promise<boolean> {
    // Finished well: every stage is done. Failed at a stage: the ones before it are. Held for review: its mask is made.
    const before = stages.slice(0, stageIndex(o.stage)).reduce((bits, s) => (s === "generate" ? bits : bits | ImageState[s]), 0);
    const add =
      o.outcome === "ok"
        ? ImageState.detect | ImageState.mask | ImageState.finalize
        : o.outcome === "review"
          ? ImageState.detect | ImageState.mask | ImageState.review
          : before | ImageState.failed | (stageIndex(o.stage) << 5);
    const record = o.record ? JSON.stringify({ ...o.record, reason: o.record.reason.slice(0, reasonLength) }) : "";
    const reply = await this.eval(
      lua.finish,
      runId,
      imageId,
      Date.now(),
      add,
      o.outcome,
      o.failedResults,
      o.notAttempted ?? 0,
      record,
      failedKept,
      reasonsKept,
      o.name,
      ...o.causes.flat(),
    );
    // Counted by the one worker whose script finished the image: summed over the fleet, exact.
    if (reply === 1) imageFinished(runId, o.outcome);
    return reply === 1;
  }

  /**
   * Undoes a recorded failure so `retry` can run the image again from `record.stage`: the stages
   * before it stay done, the image counts as unfinished, its causes lose it. False when the
   * record is gone (another retry took it).
   */
  async reopen(runId: string, imageId: string, record: FailureRecord): Promise<boolean> {
    const partial = record.stage === "generate" && (record.okResults ?? 0) > 0;
    // Stages before the one that failed stay done (a partly failed image reruns finalize).
    const keep = stages.slice(0, stageIndex(record.stage)).reduce((bits, s) => (s === "generate" ? bits : bits | ImageState[s]), 0);
    const subtract: (string | number)[] = ["finished", 1, record.review ? "review" : partial ? "ok" : "failed", 1];
    if (partial) subtract.push("finalize", 1);
    // A held image's mask was counted made; it is made again (reused) when the image goes on.
    if (record.review) subtract.push("mask", 1);
    const failedResults = record.failedResults?.length ?? 0;
    if (failedResults) subtract.push("resultsFailed", failedResults);
    if (record.notAttempted) subtract.push("resultsNotAttempted", record.notAttempted);
    const reply = await this.eval(lua.reopen, runId, imageId, keep, ...subtract, "--", ...record.causes.flat());
    return reply === 1;
  }

  /** One job's duration at a stage (histogram: report's median, p90, max). */
  async duration(runId: string, stage: Stage, ms: number): Promise<void> {
    await this.eval(lua.duration, runId, stage, durationBucket(ms), Math.round(ms));
  }

  /** The durations histogram of a stage: bucket -> jobs, and the longest. */
  async durations(runId: string): Promise<Record<Stage, { buckets: Map<number, number>; maxMs: number | null }>> {
    const h = await this.redis.hgetall(runKeys(runId).durations);
    const out = Object.fromEntries(stages.map((s) => [s, { buckets: new Map<number, number>(), maxMs: null as number | null }])) as Record<
      Stage,
      { buckets: Map<number, number>; maxMs: number | null }
    >;
    for (const [field, value] of Object.entries(h)) {
      const [stage, bucket] = field.split(":") as [Stage, string];
      if (!out[stage]) continue;
      if (bucket === "max") out[stage].maxMs = Number(value);
      else out[stage].buckets.set(Number(bucket), Number(value));
    }
    return out;
  }

  async progress(runId: string): Promise<RunProgress> {
    const h = await this.redis.hgetall(runKeys(runId).progress);
    return {
      images: num(h.images),
      results: num(h.results),
      detect: num(h.detect),
      mask: num(h.mask),
      finalize: num(h.finalize),
      resultsDone: num(h.resultsDone),
      resultsFailed: num(h.resultsFailed),
      resultsNotAttempted: num(h.resultsNotAttempted),
      finished: num(h.finished),
      ok: num(h.ok),
      failed: num(h.failed),
      review: num(h.review),
    };
  }

  /** createdAt, whether a producer is still listing, last finish, queues; undefined when there is no such run. */
  async info(runId: string): Promise<RunInfo | undefined> {
    const [createdAt, listing, lastFinishAt, queuePrefix] = await this.redis.hmget(runKey(runId), "createdAt", "listing", "lastFinishAt", "queuePrefix");
    if (createdAt === null) return undefined;
    return { createdAt: Number(createdAt), listing: listing !== null, ...(lastFinishAt !== null && { lastFinishAt: Number(lastFinishAt) }), queuePrefix: queuePrefix ?? keyPrefix };
  }

  /** Up to `limit` failure records, with their image ids (in Redis's order). */
  async failures(runId: string, limit: number): Promise<(FailureRecord & { imageId: string })[]> {
    const out: (FailureRecord & { imageId: string })[] = [];
    for await (const r of this.failureRecords(runId)) {
      if (out.length >= limit) break;
      out.push(r);
    }
    return out;
  }

  /** Every failure record of a run, page by page. */
  async *failureRecords(runId: string): AsyncGenerator<FailureRecord & { imageId: string }> {
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.hscan(runKeys(runId).failed, cursor, "COUNT", 500);
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) yield { ...(JSON.parse(flat[i + 1] as string) as FailureRecord), imageId: flat[i] as string };
    } while (cursor !== "0");
  }

  /** The run's causes of failure, most first, with example names. */
  async reasons(runId: string): Promise<ReasonGroup[]> {
    const keys = runKeys(runId);
    const [counts, examples] = await Promise.all([this.redis.hgetall(keys.reasons), this.redis.hgetall(keys.examples)]);
    return Object.entries(counts)
      .map(([cause, count]) => {
        const tab = cause.indexOf("\t");
        const prefix = cause.slice(0, tab);
        const kind = prefix === "result" ? ("result" as const) : ("image" as const);
        return {
          kind,
          stage: kind === "result" ? "generate" : (prefix as Stage),
          reason: cause.slice(tab + 1),
          count: Number(count),
          examples: JSON.parse(examples[cause] ?? "[]") as string[],
        };
      })
      .filter((g) => g.count > 0)
      .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  }

  /** Every image of a run with its state (and, for failures kept, reason and name). O(images): tests and tools. */
  async images(runId: string): Promise<ImageRecord[]> {
    const records = new Map<string, FailureRecord>();
    for await (const r of this.failureRecords(runId)) records.set(r.imageId, r);
    const out: ImageRecord[] = [];
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.hscan(runKeys(runId).images, cursor, "COUNT", 1000);
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) {
        const imageId = flat[i] as string;
        const v = Number(flat[i + 1]);
        const failed = (v & ImageState.failed) !== 0;
        const record = records.get(imageId);
        out.push({
          imageId,
          done: (["detect", "mask", "finalize"] as const).filter((s) => (v & ImageState[s]) !== 0),
          finished: (v & ImageState.finished) !== 0,
          ...(failed && { failedStage: stages[(v >> 5) & 3] as Stage }),
          ...(record && { reason: record.reason, name: record.name }),
        });
      }
    } while (cursor !== "0");
    return out;
  }

  async imageCount(runId: string): Promise<number> {
    return this.redis.hlen(runKeys(runId).images);
  }

  /** Adds to one of a run's counters (generator calls, throttles, ...). */
  async count(runId: string, name: string, by = 1): Promise<void> {
    await this.redis.hincrby(runKeys(runId).counters, name, by);
  }

  async counters(runId: string): Promise<Record<string, number>> {
    const h = await this.redis.hgetall(runKeys(runId).counters);
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Number(v)]));
  }

  /** A producer is adding inputs to the run (until listingDone): a watcher waits for it as well as for the images. */
  async listingStarted(runId: string): Promise<void> {
    await this.redis.multi().hset(runKey(runId), "listing", "1").hdel(runKey(runId), "listedAt").exec();
  }

  async listingDone(runId: string): Promise<void> {
    await this.redis.multi().hdel(runKey(runId), "listing").hset(runKey(runId), "listedAt", String(Date.now())).exec();
  }

  /** Whether a producer is (or was, when it died) still adding the run's inputs. */
  async listing(runId: string): Promise<boolean> {
    return (await this.redis.hexists(runKey(runId), "listing")) === 1;
  }

  /** The producer's checkpoint: the cursor after the last input whose job is in, for this list of inputs (`of`). */
  async checkpoint(runId: string, of: string, cursor: string): Promise<void> {
    await this.redis.hset(runKey(runId), "cursorOf", of, "cursor", cursor);
  }

  /** The checkpoint for this list of inputs; undefined when none (or one for another list). */
  async checkpointOf(runId: string, of: string): Promise<string | undefined> {
    const [cursorOf, cursor] = await this.redis.hmget(runKey(runId), "cursorOf", "cursor");
    return cursorOf === of && cursor !== null ? cursor : undefined;
  }

  /** Deletes every key of a run (UNLINK: a million-image hash is freed in the background) and its results sets. */
  async forget(runId: string): Promise<void> {
    const keys = runKeys(runId);
    let cursor = "0";
    do {
      const [next, found] = await this.redis.scan(cursor, "MATCH", `${keys.run}:gen:*`, "COUNT", 1000);
      cursor = next;
      if (found.length) await this.redis.unlink(...found);
    } while (cursor !== "0");
    await this.redis
      .multi()
      .unlink(...Object.values(keys))
      .zrem(runsKey, runId)
      .exec();
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

  async listRuns(): Promise<string[]> {
    return this.redis.zrange(runsKey, "0", "-1");
  }
}

/** What registering an image found: new to the run, known but not started (its job may be missing), or under way or finished. */
export type Registered = "new" | "not-started" | "started";

/**
 * BullMQ job id of an image's jobs in a run: the run's tag and the image id. Runs never share
 * jobs (two runs of one image are two jobs; the second reuses what the first stored). A stage's
 * next job keeps its job's id; generate jobs add their prompt x seed (generateJobId).
 */
export function jobIdOf(tag: string, imageId: string): string {
  return `${tag}-${imageId}`;
}
