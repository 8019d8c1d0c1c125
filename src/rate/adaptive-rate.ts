/**
 * One generator request rate for the whole fleet, found by the fleet itself (no --rate): every
 * generate worker process on every host paces its requests by the same state in Redis, raises
 * the rate slowly while requests succeed and cuts it when the service throttles (429 without a
 * rate header). All changes run in Lua, timed by Redis TIME, the one clock of all hosts.
 *
 *   <prefix>:state   hash: rate (req/s), next (ms, the next free send slot), ssthresh (0 while
 *                    in slow start), cutAt, pacedAt (ms, when a caller last had to wait for a
 *                    slot), throttles, cuts, updatedAt; expires after a day without a write
 *
 * acquire: GCRA pacing (slot = max(now, next); next = slot + 1000/rate). A slot is only reserved
 *   when it is at most 10 ms away; a caller told to wait longer sleeps and asks again, and each
 *   instance lets one caller at a time ask. Slots reserved seconds ahead would stay spaced at the
 *   rate of when they were taken, so a cut could not reach them.
 * succeeded: slow start (+slowStartPerSecond per success: the rate grows ~25 %/s) until the first
 *   throttle; after a cut, the same speed back to recoverTo x ssthresh; then probing, + (
 *   increasePerSecond + increaseFraction x rate) per second, faster once past ssthresh, and back
 *   to slow start 10 % past it (the service's limit rose). Only while callers wait for slots (one
 *   did within max(1 s, 2 intervals)): a fleet without the demand to fill the rate does not
 *   learn a rate it never tried.
 * throttled: rate x decrease, at most once per cooldownMs (requests in flight at a cut belong to
 *   it); ssthresh = the rate there (x 0.9 when leaving slow start, which overshoots by the growth
 *   during the service's window); the next slot moves out to one new interval from now.
 *
 * Defaults from a simulation (a script in /tmp, not kept) of 2 processes x 8 senders, 20-50 ms
 * requests, against "throttle when >= L accepted in the last 1000 ms", 120 s from 1 req/s, 4 seeds:
 * accepted after warm-up (first throttle + 2 s) 94.8-95.8 % of L for L = 2, 5, 10, 20/s; throttled
 * 2.2-2.6 %, 0.5-0.7 %, 0.3 %, 0.1 % of all requests; first throttle after 4, 7.5, 10, 13 s.
 * L = 5 for 70 s (~320 requests): 95.5 % of L, 0.6-0.9 % throttled. L stepping 5 -> 10 is found
 * in ~40 s; 10 -> 5 costs ~20 throttles. decrease 0.8-0.9 makes little difference; recoverTo and
 * the probe speed trade accepted rate against throttles.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { keyPrefix } from "../pipeline/stages.js";

export interface AdaptiveRateOptions {
  /** The rate a new fleet starts at, req/s (1). */
  initialPerSecond?: number;
  /** Never below (0.1) nor above (1000) this, req/s. */
  minPerSecond?: number;
  maxPerSecond?: number;
  /** A throttle multiplies the rate by this (0.85). */
  decrease?: number;
  /** At most one cut per this many ms (1000): one service window. */
  cooldownMs?: number;
  /** Probing past the last throttle: + this req/s per second (0.002)... */
  increasePerSecond?: number;
  /** ...+ this fraction of the rate per second (0.001). */
  increaseFraction?: number;
  /** Slow start and recovery: + this req/s per success, i.e. about this fraction of the rate per second (0.25). */
  slowStartPerSecond?: number;
  /** After a cut, regrow at slow-start speed up to this fraction of the rate that was throttled (0.93). */
  recoverTo?: number;
}

export const adaptiveRateDefaults: Required<AdaptiveRateOptions> = {
  initialPerSecond: 1,
  minPerSecond: 0.1,
  maxPerSecond: 1000,
  decrease: 0.85,
  cooldownMs: 1000,
  increasePerSecond: 0.002,
  increaseFraction: 0.001,
  slowStartPerSecond: 0.25,
  recoverTo: 0.93,
};

export interface AdaptiveRateState {
  /** The rate in force, req/s. */
  perSecond: number;
  phase: "slow-start" | "steady";
  /** Throttles reported, and the cuts they caused (one per cooldown at most). */
  throttles: number;
  cuts: number;
  /** The rate the service last throttled at (ssthresh), null in slow start. */
  ceiling: number | null;
  /** Redis time of the last change, ms (0: none yet). */
  updatedAt: number;
}

/** How far ahead a slot is reserved, ms; a caller further off sleeps and asks again. */
const HORIZON_MS = 10;
const TTL_MS = 24 * 3600 * 1000;

// Shared head of the scripts: KEYS[1] the state hash; ARGV[1..4] initial, min, max, ttl ms.
const head = `
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local h = redis.call('HMGET', key, 'rate', 'next', 'ssthresh', 'cutAt', 'pacedAt')
local minR, maxR, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rate = math.min(maxR, math.max(minR, tonumber(h[1]) or tonumber(ARGV[1])))
local nextAt, ss, cutAt, pacedAt = tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0
local function num(x) return string.format('%.17g', x) end
local function save(...)
  redis.call('HSET', key, 'rate', num(rate), 'updatedAt', num(now), ...)
  redis.call('PEXPIRE', key, ttl)
end
`;

// ARGV[5] horizon ms. Returns {granted 0|1, wait ms}.
const acquireLua = `${head}
local slot = math.max(now, nextAt)
local wait = slot - now
if wait > tonumber(ARGV[5]) then
  save('pacedAt', num(now))
  return {0, num(wait)}
end
if wait > 0 then pacedAt = now end
save('next', num(slot + 1000 / rate), 'pacedAt', num(pacedAt))
return {1, num(wait)}
`;

// ARGV[5..8] slowStart, recoverTo, increasePerSecond, increaseFraction. Returns the rate.
const succeededLua = `${head}
local forget = 0.1
if now - pacedAt > math.max(1000, 2000 / rate) then return num(rate) end
local slowStart, recoverTo = tonumber(ARGV[5]), tonumber(ARGV[6])
if ss == 0 then
  rate = rate + slowStart
elseif rate < recoverTo * ss then
  rate = math.min(rate + slowStart, recoverTo * ss)
else
  local over = math.max(0, rate / ss - 1)
  rate = rate + (tonumber(ARGV[7]) + tonumber(ARGV[8]) * rate) / rate + slowStart * over / forget
  if rate > ss * (1 + forget) then ss = 0 end
end
rate = math.min(maxR, math.max(minR, rate))
save('ssthresh', num(ss))
return num(rate)
`;

// ARGV[5..6] decrease, cooldown ms. Returns {cut 0|1, rate}.
const throttledLua = `${head}
redis.call('HINCRBY', key, 'throttles', 1)
if cutAt > 0 and now - cutAt < tonumber(ARGV[6]) then
  redis.call('PEXPIRE', key, ttl)
  return {0, num(rate)}
end
if ss == 0 then ss = rate * 0.9 else ss = rate end
rate = math.max(minR, rate * tonumber(ARGV[5]))
redis.call('HINCRBY', key, 'cuts', 1)
save('ssthresh', num(ss), 'cutAt', num(now), 'next', num(math.max(nextAt, now + 1000 / rate)))
return {1, num(rate)}
`;

type Script = (key: string, ...args: (string | number)[]) => Promise<unknown>;

function script(redis: Redis, name: string, lua: string): Script {
  redis.defineCommand(name, { numberOfKeys: 1, lua });
  const fn = (redis as unknown as Record<string, Script | undefined>)[name];
  if (!fn) throw new Error(`ioredis did not define ${name}`);
  return fn.bind(redis);
}

export class AdaptiveRate {
  readonly key: string;
  private readonly o: Required<AdaptiveRateOptions>;
  private readonly scripts: { acquire: Script; succeeded: Script; throttled: Script };
  /** Callers of this instance ask for slots one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    readonly prefix = `${keyPrefix}:rate:generate`,
    options: AdaptiveRateOptions = {},
  ) {
    const o = { ...adaptiveRateDefaults, ...options };
    if (!(o.minPerSecond > 0 && o.minPerSecond <= o.initialPerSecond && o.initialPerSecond <= o.maxPerSecond)) {
      throw new RangeError(`adaptive rate: need 0 < min (${o.minPerSecond}) <= initial (${o.initialPerSecond}) <= max (${o.maxPerSecond})`);
    }
    if (!(o.decrease > 0 && o.decrease < 1)) throw new RangeError(`adaptive rate: decrease must be in (0, 1), got ${o.decrease}`);
    this.o = o;
    this.key = `${prefix}:state`;
    this.scripts = {
      acquire: script(redis, "maskfleetRateAcquire", acquireLua),
      succeeded: script(redis, "maskfleetRateSucceeded", succeededLua),
      throttled: script(redis, "maskfleetRateThrottled", throttledLua),
    };
  }

  private call(s: Script, ...args: number[]): Promise<unknown> {
    const { initialPerSecond, minPerSecond, maxPerSecond } = this.o;
    return s(this.key, initialPerSecond, minPerSecond, maxPerSecond, TTL_MS, ...args);
  }

  /** Waits for this caller's send slot, paced with every caller of the fleet; resolves with the ms waited. */
  acquire(): Promise<number> {
    const started = performance.now();
    const turn = this.queue.then(async () => {
      for (;;) {
        const [granted, wait] = (await this.call(this.scripts.acquire, HORIZON_MS)) as [number, string];
        const ms = Number(wait);
        if (ms > 0) await sleep(Math.ceil(ms));
        if (granted === 1) return performance.now() - started;
      }
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** A request sent in an acquired slot succeeded: additive increase. */
  async succeeded(): Promise<void> {
    const { slowStartPerSecond, recoverTo, increasePerSecond, increaseFraction } = this.o;
    await this.call(this.scripts.succeeded, slowStartPerSecond, recoverTo, increasePerSecond, increaseFraction);
  }

  /** The service throttled a request: multiplicative decrease, once per cooldown. */
  async throttled(): Promise<void> {
    await this.call(this.scripts.throttled, this.o.decrease, this.o.cooldownMs);
  }

  async current(): Promise<AdaptiveRateState> {
    const [rate, ss, throttles, cuts, updatedAt] = await this.redis.hmget(this.key, "rate", "ssthresh", "throttles", "cuts", "updatedAt");
    const ceiling = Number(ss ?? 0);
    return {
      perSecond: Math.min(this.o.maxPerSecond, Math.max(this.o.minPerSecond, rate ? Number(rate) : this.o.initialPerSecond)),
      phase: ceiling > 0 ? "steady" : "slow-start",
      throttles: Number(throttles ?? 0),
      cuts: Number(cuts ?? 0),
      ceiling: ceiling > 0 ? ceiling : null,
      updatedAt: Number(updatedAt ?? 0),
    };
  }
}
