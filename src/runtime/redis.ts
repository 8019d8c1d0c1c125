/**
 * The Redis connection every process uses: URLs redacted for messages, TLS with a CA bundle, and
 * the check before any work that Redis answers and will not evict keys.
 */
import { readFileSync } from "node:fs";
import { Redis, type RedisOptions } from "ioredis";
import { ConfigError } from "./errors.js";
import { log } from "./log.js";

/**
 * A Redis URL fit to print, log or label: user and password become `***` (also `password=` and
 * `username=` query options, which ioredis reads too). Every message naming a Redis URL uses this.
 */
export function redactUrl(url: string): string {
  // The user info runs to the last "@": a password may hold "@", ":" or "/" as they are.
  const m = /^((?:[a-z][a-z0-9+.-]*:)?\/\/)([^]*)@([^@]*)$/i.exec(url);
  let out = url;
  if (m) {
    const [, scheme = "", info = "", rest = ""] = m;
    const colon = info.indexOf(":");
    const user = colon < 0 ? info : info.slice(0, colon);
    out = `${scheme}${user ? "***" : ""}${colon < 0 ? "" : ":***"}@${rest}`;
  }
  return out.replace(/([?&](?:password|pass|username|user)=)[^&#]*/gi, "$1***");
}

/**
 * Redis cannot be used: not reachable, refused (WRONGPASS, NOAUTH, a certificate problem), silent,
 * or set up to lose jobs (maxmemory-policy). One line, the URL redacted; the CLI prints it as it is.
 */
export class RedisUnusableError extends Error {
  override readonly name = "RedisUnusableError";
}

const isTlsUrl = (url: string) => /^rediss:/i.test(url);

/** The CA bundle of `redisCa` / `--redis-ca` that connect() and assertRedisReachable() use for rediss:// when given none. */
let defaultCa: Buffer | undefined;

/**
 * Reads the CA bundle (PEM) for a rediss:// Redis and makes it the one every later connection of
 * this process uses (the worker pools' too); undefined clears it. One line (ConfigError, key
 * redisCa) when the file cannot be read or the URL is a plain redis:// one.
 */
export function useRedisCa(url: string, caFile: string | undefined): Buffer | undefined {
  defaultCa = undefined;
  if (caFile === undefined || caFile === "") return undefined;
  if (!isTlsUrl(url)) throw new ConfigError("redisCa", `a CA bundle is for TLS; the Redis URL ${redactUrl(url)} is plain (use rediss://)`);
  try {
    defaultCa = readFileSync(caFile);
  } catch (err) {
    throw new ConfigError("redisCa", `cannot read ${caFile}: ${(err as Error).message}`);
  }
  return defaultCa;
}

function tlsOptions(url: string, ca: Buffer | undefined): RedisOptions {
  const bundle = ca ?? defaultCa;
  return bundle && isTlsUrl(url) ? { tls: { ca: bundle } } : {};
}

/**
 * A connection for BullMQ: blocking commands need maxRetriesPerRequest null. `ca`: for rediss://
 * (default: the one of useRedisCa). Its errors are logged with the URL redacted, once each until it
 * is ready again, never ioredis' "Unhandled error event" stack.
 */
export function connect(url: string, o: { ca?: Buffer } = {}): Redis {
  const redis = new Redis(url, { ...tlsOptions(url, o.ca), maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
  const logged = logErrorsOnce(redis, { redis: redactUrl(url) }, "Redis connection error");
  redis.on("ready", logged.reset);
  return redis;
}

/**
 * Logs an emitter's errors (a connection, a BullMQ queue, worker or flow producer) as one warn line
 * each, a message again only after another one or a reset: never a stack on stderr, which BullMQ
 * prints for an error nobody listens to.
 */
export function logErrorsOnce(emitter: { on(event: "error", listener: (err: Error) => void): unknown }, fields: Record<string, string>, msg: string): { reset: () => void } {
  let last: string | undefined;
  emitter.on("error", (err: Error) => {
    const message = (err.message ?? String(err)).split("\n")[0];
    if (message === last) return;
    last = message;
    log.warn({ ...fields, err: message }, msg);
  });
  return { reset: () => void (last = undefined) };
}

/**
 * Quietens a BullMQ object on a connection from connect(), whose own listener already logs each
 * error; on a connection BullMQ made itself, logs them once each.
 */
export function quietBullmqErrors(emitter: { on(event: "error", listener: (err: Error) => void): unknown }, connection: unknown, fields: Record<string, string>): void {
  if (connection instanceof Redis) emitter.on("error", () => undefined);
  else logErrorsOnce(emitter, fields, "Redis connection error");
}

/**
 * Closes a connection at shutdown: QUIT, or, when the connection is already broken (a quit then
 * rejects with "Connection is closed."), a plain disconnect. Nothing is left to lose at that point.
 */
export async function closeConnection(redis: Redis): Promise<void> {
  await redis.quit().catch(() => redis.disconnect());
}

/** What to add to the first error's message, when it is one a user can act on. */
function hintFor(url: string, err: Error & { code?: string }): string {
  const code = err.code ?? "";
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS/.test(code)) {
    return " (a certificate problem: give the CA that signed the server's certificate with --redis-ca)";
  }
  if (/^NOAUTH\b/.test(err.message)) return " (a password goes in the URL: redis://:PASSWORD@host:port)";
  if (isTlsUrl(url) && code === "ETIMEDOUT") return " (no TLS handshake: is it a plain redis:// server?)";
  return "";
}

/**
 * maxmemory-policy from CONFIG GET, or from INFO memory where CONFIG is disabled or renamed (a
 * managed Redis); undefined when neither says.
 */
async function evictionPolicy(redis: Redis): Promise<string | undefined> {
  try {
    const reply = (await redis.call("CONFIG", "GET", "maxmemory-policy")) as unknown;
    const pairs = Array.isArray(reply) ? reply.map(String) : [];
    const at = pairs.indexOf("maxmemory-policy");
    if (at >= 0 && pairs[at + 1]) return pairs[at + 1];
  } catch {
    // CONFIG refused (renamed, NOPERM): INFO says it too.
  }
  try {
    return /^maxmemory_policy:(\S+)/m.exec(await redis.info("memory"))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Before any work: Redis answers PING within `timeoutMs` (a server that accepts TCP and says
 * nothing must not hang a command) and will not evict keys. Throws a RedisUnusableError whose one
 * line says why: the first connection error (ECONNREFUSED, WRONGPASS, NOAUTH, a certificate
 * problem), no reply, or a maxmemory-policy other than noeviction. No endless reconnect loop.
 */
export async function assertRedisReachable(url: string, o: { timeoutMs?: number; ca?: Buffer } = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const shown = redactUrl(url);
  const probe = new Redis(url, { ...tlsOptions(url, o.ca), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  // The first error says why (ECONNREFUSED, WRONGPASS, ...); ioredis then reports only "Connection is closed".
  let cause: (Error & { code?: string }) | undefined;
  probe.on("error", (err: Error) => void (cause ??= err));
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RedisUnusableError(`cannot reach Redis at ${shown}: no reply within ${timeoutMs / 1000} s (is it a Redis server? a TLS one needs rediss://)`)),
      timeoutMs,
    );
  });
  let policy: string | undefined;
  try {
    await Promise.race([
      (async () => {
        await probe.connect();
        await probe.ping();
        policy = await evictionPolicy(probe);
      })(),
      silent,
    ]);
  } catch (err) {
    if (err instanceof RedisUnusableError && !cause) throw err;
    const why = cause ?? (err as Error);
    throw new RedisUnusableError(`cannot reach Redis at ${shown}: ${why.message.split("\n")[0]}${hintFor(url, why)}`);
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
  if (policy !== undefined && policy !== "noeviction") {
    throw new RedisUnusableError(
      `Redis at ${shown} has maxmemory-policy ${policy}: it may evict queued jobs and run state; set it to noeviction (CONFIG SET maxmemory-policy noeviction, or maxmemory-policy noeviction in redis.conf)`,
    );
  }
}
