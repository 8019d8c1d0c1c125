/**
 * The queue browser (`maskfleet ui`): bull-board on maskfleet's BullMQ queues, the four shared
 * stage queues and the private ones of every unfinished `maskfleet run` (shown as `<run>:<stage>`,
 * looked up again at most every 10 s while someone browses). Read-only unless `allowRetries`, and
 * enforced here, in front of bull-board, not only by its hidden buttons: reads pass; with
 * `allowRetries` a retry of failed jobs passes too; every other request that would change
 * something (clean, remove, promote, pause, add, ...) is refused with 405. Health checks:
 * GET /healthz (200 while it serves), GET /ready (200 while Redis answers).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { ConfigError } from "../runtime/errors.js";
import { log } from "../runtime/log.js";
import { keyPrefix, stages } from "../pipeline/queues.js";
import { closeConnection, connect, quietBullmqErrors } from "../runtime/redis.js";
import { RunState } from "./run-state.js";

export interface QueueBrowserOptions {
  redisUrl: string;
  /** 0: any free port. */
  port: number;
  host: string;
  /** Let the UI retry failed jobs; nothing else ever changes a queue. */
  allowRetries?: boolean;
  /** How long the list of `maskfleet run`s in progress is trusted before it is looked up again (default 10 s). */
  runsRefreshMs?: number;
}

export interface QueueBrowser {
  readonly port: number;
  /** http://127.0.0.1:3001/ */
  readonly url: string;
  /** The same for people: "(all interfaces)" after a wildcard address. */
  readonly shown: string;
  close(): Promise<void>;
}

/** The requests a board with allowRetries may make besides reads: retry a queue's failed jobs, or one job. */
const retryFailed = /^\/api\/queues\/([^/]+)\/retry\/failed$/;
const retryOne = /^\/api\/queues\/([^/]+)\/([^/]+)\/retry$/;

export async function startQueueBrowser(o: QueueBrowserOptions): Promise<QueueBrowser> {
  const redis = connect(o.redisUrl);
  const allowRetries = o.allowRetries === true;
  // readOnlyMode wins over allowRetries in bull-board (retries off, every mutation refused), so
  // retries need readOnlyMode off; what else that would allow is refused by `gate` below.
  // Completed jobs are not retried: they would run again.
  const adapterOptions = { readOnlyMode: !allowRetries, allowRetries, allowCompletedRetries: false };
  const queues = new Map<string, Queue>(); // board name -> queue
  // A run's own queues are `<run>:<stage>`; the ":" groups them under the run in the UI. Opened
  // without writing BullMQ's queue meta (a new Queue does by default): reading writes nothing.
  const adapters = (prefix: string, shownAs: string, description: string) =>
    stages.map((stage) => {
      const q = new Queue(stage, { connection: redis, prefix, skipMetasUpdate: true });
      quietBullmqErrors(q, redis, { queue: stage }); // the connection's own listener (connect()) logs them
      queues.set(`${shownAs}${q.name}`, q);
      return new BullMQAdapter(q, { ...adapterOptions, prefix: shownAs, description, delimiter: shownAs ? ":" : "" });
    });

  const serverAdapter = new ExpressAdapter();
  const board = createBullBoard({
    queues: adapters(keyPrefix, "", "shared queue: enqueue and the worker pools"),
    serverAdapter,
    options: { uiConfig: { boardTitle: "maskfleet", hideDocsLink: true, overview: { groupByDelimiter: true } } },
  });
  const app = serverAdapter.getRouter() as (req: IncomingMessage, res: ServerResponse) => void;

  // The private queues of `maskfleet run`s still in progress, by run id.
  const runs = new Map<string, Queue[]>();
  let refreshed = 0;
  let refreshing: Promise<void> | undefined;
  const refresh = async () => {
    const current = await privateRunsInProgress(redis);
    for (const [runId, prefix] of current) {
      if (runs.has(runId)) continue;
      const added = adapters(prefix, `${runId}:`, `maskfleet run ${runId}`);
      board.setQueues(added);
      runs.set(
        runId,
        stages.map((s) => queues.get(`${runId}:${s}`) as Queue),
      );
    }
    for (const [runId, qs] of runs) {
      if (current.has(runId)) continue;
      runs.delete(runId);
      for (const q of qs) {
        board.removeQueue(`${runId}:${q.name}`);
        queues.delete(`${runId}:${q.name}`);
      }
      await Promise.all(qs.map((q) => q.close()));
    }
    refreshed = Date.now();
  };
  const fresh = () => {
    if (Date.now() - refreshed < (o.runsRefreshMs ?? 10_000)) return Promise.resolve();
    refreshing ??= refresh()
      .catch((err: Error) => log.warn({ err: err.message }, "queue browser: cannot list the runs' own queues"))
      .finally(() => (refreshing = undefined));
    return refreshing;
  };

  /** Whether a request may go on to bull-board: reads, and with allowRetries the retries of failed jobs. */
  const gate = async (method: string, path: string): Promise<string | undefined> => {
    if (method === "GET" || method === "HEAD") return undefined;
    const all = retryFailed.exec(path);
    if (allowRetries && method === "PUT" && all) return undefined;
    const one = retryOne.exec(path);
    if (allowRetries && method === "PUT" && one) {
      const job = await queues.get(decodeURIComponent(one[1] as string))?.getJob(decodeURIComponent(one[2] as string));
      const state = await job?.getState();
      if (job === undefined) return "no such job";
      return state === "failed" ? undefined : `only failed jobs are retried here; this one is ${state}`;
    }
    return allowRetries ? "only retries of failed jobs are allowed (--allow-retries)" : "the queue browser is read-only (start it with --allow-retries to retry failed jobs)";
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? "GET";
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const json = (status: number, body: unknown) => void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (path === "/healthz") return json(200, { ok: true });
    if (path === "/ready") return (await redisAnswers(redis)) ? json(200, { redis: "ok" }) : json(503, { redis: "no answer" });
    // The runs' own queues first: the gate looks jobs up in them.
    if (path.startsWith("/api/")) await fresh();
    const refused = await gate(method, path);
    // bull-board's own answer to a read-only queue: 405 and ERRORS.QUEUE_READ_ONLY, which its UI shows.
    if (refused) return json(405, { error: { key: "ERRORS.QUEUE_READ_ONLY" }, message: refused });
    app(req, res);
  };

  let server: Server;
  try {
    server = await listen(
      o.port,
      o.host,
      (req, res) =>
        void handle(req, res).catch((err: Error) => {
          log.warn({ err: err.message, url: req.url }, "queue browser: request failed");
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end(`${err.message}\n`);
        }),
    );
  } catch (err) {
    await closeAll([...queues.values()], redis);
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND") throw new ConfigError("host", `cannot listen on ${o.host}: ${e.message}`);
    throw new ConfigError(
      "port",
      e.code === "EADDRINUSE" ? `port ${o.port} on ${o.host} is in use (give another with --port, or 0 for any free one)` : `cannot listen on ${o.host}:${o.port}: ${e.message}`,
    );
  }
  await fresh();

  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" || address.address.includes(":") ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/`;
  const wildcard = address.address === "0.0.0.0" || address.address === "::";
  return {
    port: address.port,
    url,
    shown: wildcard ? `${url} (all interfaces)` : url,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await refreshing;
      await closeAll([...queues.values()], redis);
    },
  };
}

/** Runs made by `maskfleet run` (their own queue prefix) and not finished yet: run id -> queue prefix. */
async function privateRunsInProgress(redis: Redis): Promise<Map<string, string>> {
  const state = new RunState(redis);
  const out = new Map<string, string>();
  for (const runId of await state.listRuns()) {
    const info = await state.info(runId);
    if (!info || info.queuePrefix === keyPrefix) continue;
    const { images, finished } = await state.progress(runId);
    if (info.listing || finished < images) out.set(runId, info.queuePrefix);
  }
  return out;
}

/** PING within 2 s (the connection queues commands while Redis is away: no answer is an answer). */
async function redisAnswers(redis: Redis): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000)));
  try {
    return await Promise.race([
      redis.ping().then(
        (r) => r === "PONG",
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function closeAll(queues: Queue[], redis: Redis): Promise<void> {
  await Promise.all(queues.map((q) => q.close()));
  await closeConnection(redis);
}

function listen(port: number, host: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
