/**
 * Prometheus metrics of one process (a worker or the producer): one registry, the metric
 * definitions, and the HTTP endpoint that serves them (GET /metrics) and the process's health
 * checks (GET /healthz, GET /ready). Labels stay few-valued: stage, step, failure class, queue,
 * state, generator, model; a run id only on the per-run series (the gauges of the runs a process
 * watches, and the images finished of the last runsKept runs). Every series of the process,
 * prom-client's process metrics too, carries `pool` (poolStarted), so a board selects
 * maskfleet's processes by it or by maskfleet_build_info, whatever the scrape job is called.
 * The README lists every metric.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import type { Queue } from "bullmq";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { ConfigError, failureClass, type FailureClass } from "./errors.js";
import { log } from "./log.js";
import { stages, type Stage } from "../pipeline/stages.js";
import { isReady } from "./readiness.js";
import { maskfleetVersion } from "./version.js";

export const registry = new Registry();

/** The pool label of a process running these stages: the one stage, `all` for all four, else them joined by "+". */
export function poolLabelOf(stagesRun: Iterable<string>): string {
  const run = [...new Set(stagesRun)].sort();
  if (run.length === 1) return run[0] as string;
  return stages.every((s) => run.includes(s)) ? "all" : run.join("+");
}

/**
 * The `pool` label of every series this process exports: the stage of `maskfleet worker
 * <stage>`; `all` for `maskfleet run` (the four pools in one process: its memory and CPU cannot
 * be split among them, and per-stage series carry `stage` anyway); `producer` for a process that
 * runs no pool (`enqueue --wait`, `status --wait`). Set as pools start (poolStarted).
 */
const poolsStarted = new Set<string>();
registry.setDefaultLabels({ pool: "producer" });

/** 1 ms to 5 min: a store write, a SAM decoder run, a ViT-H encode on CPU, a Nova Canvas request. */
const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const counter = <L extends string>(name: string, help: string, labelNames: L[]) => new Counter({ name, help, labelNames, registers: [registry] });
const gauge = <L extends string>(name: string, help: string, labelNames: L[]) => new Gauge({ name, help, labelNames, registers: [registry] });
const histogram = <L extends string>(name: string, help: string, labelNames: L[]) => new Histogram({ name, help, labelNames, buckets, registers: [registry] });

export const jobsCompleted = counter("maskfleet_jobs_completed_total", "Jobs completed, per stage", ["stage"]);
export const jobsFailed = counter("maskfleet_jobs_failed_total", "Jobs failed for good (bad input, a refused request, or no attempt left), per stage and failure class", [
  "stage",
  "reason",
]);
export const jobsRetried = counter("maskfleet_jobs_retried_total", "Job attempts that failed and will be retried with backoff, per stage and failure class", ["stage", "reason"]);
const jobsActive = gauge("maskfleet_jobs_active", "Jobs running in this process, per stage", ["stage"]);
export const workerConcurrency = gauge(
  "maskfleet_worker_concurrency",
  "Jobs this process runs at once at most, per stage (utilisation: rate of worker_busy_seconds_total / this)",
  ["stage"],
);
export const stageDuration = histogram("maskfleet_stage_duration_seconds", "Time of one completed job, per stage", ["stage"]);
const stepDuration = histogram(
  "maskfleet_step_duration_seconds",
  "Time of one step inside a job: input read, image decode, SAM encoder and decoder, generator request, store I/O",
  ["step"],
);
const generatorRequests = counter("maskfleet_generator_requests_total", "Generator requests, per generator and outcome (ok, or the failure class)", ["generator", "outcome"]);
export const throttles = counter("maskfleet_throttles_total", "Jobs a service throttled, per stage", ["stage"]);
export const rateLimitPauses = counter("maskfleet_rate_limit_pauses_total", "Queue pauses this process started after a throttle, per queue", ["queue"]);
export const rateLimitPauseSeconds = counter("maskfleet_rate_limit_pause_seconds_total", "Seconds of queue pause this process asked for after throttles, per queue", ["queue"]);
const onnxSessions = gauge("maskfleet_onnx_session_info", "1 for each ONNX model loaded in this process, with its task and the execution provider it runs on", [
  "model",
  "task",
  "ep",
]);
const runImages = gauge("maskfleet_run_images", "Images of a run this process watches, by state (total, finished, succeeded, failed)", ["run", "state"]);
const runImagesFinished = counter(
  "maskfleet_run_images_finished_total",
  "Images of a run that finished in this process, by outcome (ok, failed, review): each image is counted once, by the worker that recorded its outcome",
  ["run", "outcome"],
);

/** Jobs running now, with the time up to which their busy seconds are counted. */
const runningJobs = new Set<{ stage: Stage; countedTo: number }>();

const workerBusySeconds = new Counter({
  name: "maskfleet_worker_busy_seconds_total",
  help: "Seconds of job execution, per stage, summed over the jobs running at once (utilisation: its rate / worker_concurrency); a running job's seconds count up to each scrape",
  labelNames: ["stage"],
  registers: [registry],
  // A long job adds its seconds scrape by scrape, not all at once as it ends.
  collect() {
    const now = performance.now();
    for (const job of runningJobs) {
      this.inc({ stage: job.stage }, (now - job.countedTo) / 1000);
      job.countedTo = now;
    }
  },
});

const outcomes = ["ok", "failed", "review"] as const;
/** Runs whose images-finished series a process keeps: a long-lived worker does not grow series per run for ever. */
const runsKept = 100;
/** The runs of runsKept, least recently seen first. */
const runsSeen = new Set<string>();

/**
 * A job of `run` runs in this process: its images-finished series exist from now on, at 0, so
 * that rate() sees an image's first finish here as an increase, not as where the series began.
 */
function runSeen(run: string): void {
  if (runsSeen.delete(run)) return void runsSeen.add(run);
  runsSeen.add(run);
  for (const outcome of outcomes) runImagesFinished.inc({ run, outcome }, 0);
  for (const old of runsSeen) {
    if (runsSeen.size <= runsKept) break;
    runsSeen.delete(old);
    for (const outcome of outcomes) runImagesFinished.remove({ run: old, outcome });
  }
}

/** An image of `run` finished in this process with this outcome (RunState.finished: once per image across the fleet). */
export function imageFinished(run: string, outcome: (typeof outcomes)[number]): void {
  runSeen(run);
  runImagesFinished.inc({ run, outcome });
}

/** A job of `stage` (and `run`) starts: counted in jobs_active and, while it runs, in busy seconds. Returns the function to call as it ends. */
export function jobStarted(stage: Stage, run: string | undefined): () => void {
  if (run !== undefined) runSeen(run);
  const job = { stage, countedTo: performance.now() };
  runningJobs.add(job);
  jobsActive.inc({ stage });
  return () => {
    if (!runningJobs.delete(job)) return;
    workerBusySeconds.inc({ stage }, (performance.now() - job.countedTo) / 1000);
    jobsActive.dec({ stage });
  };
}

/**
 * A pool of `stage` starts in this process: the process's pool label, and its series at 0 (also
 * each failure class a job can end or retry with), so that rates and utilisation show from the
 * start and a first failure or throttle counts as an increase.
 */
export function poolStarted(stage: Stage): void {
  poolsStarted.add(stage);
  registry.setDefaultLabels({ pool: poolLabelOf(poolsStarted) });
  for (const m of [jobsCompleted, throttles, workerBusySeconds]) m.inc({ stage }, 0);
  for (const m of [rateLimitPauses, rateLimitPauseSeconds]) m.inc({ queue: stage }, 0);
  for (const reason of ["input", "rejected", "config", "model", "transient"] satisfies FailureClass[]) jobsFailed.inc({ stage, reason }, 0);
  for (const reason of ["model", "transient"] satisfies FailureClass[]) jobsRetried.inc({ stage, reason }, 0);
  jobsActive.inc({ stage }, 0);
}

/** onnxruntime-node's version, read from its package.json (not loading the native addon). */
function onnxruntimeVersion(): string {
  try {
    const pkg = createRequire(import.meta.url).resolve("onnxruntime-node/package.json");
    return (JSON.parse(readFileSync(pkg, "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

gauge("maskfleet_build_info", "1 for each maskfleet process, with its versions (and, as on every series, its pool)", ["version", "node_version", "onnxruntime_version"]).set(
  { version: maskfleetVersion(), node_version: process.version, onnxruntime_version: onnxruntimeVersion() },
  1,
);

export type Step = "input_read" | "image_decode" | "sam_encode" | "sam_decode" | "generate_request" | "store_read" | "store_write" | "store_exists";

export function observeStep(step: Step, ms: number): void {
  stepDuration.observe({ step }, ms / 1000);
}

/** The time recorded for a step in this process so far, and how many times it ran (benchmarks read this). */
export async function stepTotal(step: Step): Promise<{ ms: number; count: number }> {
  const { values } = await stepDuration.get();
  const of = (suffix: string) => values.find((v) => v.metricName === `maskfleet_step_duration_seconds_${suffix}` && v.labels.step === step)?.value ?? 0;
  return { ms: of("sum") * 1000, count: of("count") };
}

/** Runs `work`, recording its time as `step` whether it succeeds or fails. */
export async function timeStep<T>(step: Step, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    observeStep(step, performance.now() - started);
  }
}

/** Runs one generator request: timed as generate_request, counted with its outcome. */
export async function generatorRequest<T>(generator: string, request: () => Promise<T>): Promise<T> {
  try {
    const result = await timeStep("generate_request", request);
    generatorRequests.inc({ generator, outcome: "ok" });
    return result;
  } catch (err) {
    generatorRequests.inc({ generator, outcome: failureClass(err) });
    throw err;
  }
}

/** Marks a loaded ONNX model; returns the function that unmarks it when its sessions close. */
export function onnxSessionLoaded(model: string, task: string, ep: string): () => void {
  const labels = { model, task, ep };
  onnxSessions.set(labels, 1);
  return () => onnxSessions.remove(labels);
}

/** Sets the per-run gauges from a run's status (the producer calls this each time it polls). */
export function recordRun(s: { runId: string; total: number; finished: number; succeeded: number; failed: number }): void {
  for (const state of ["total", "finished", "succeeded", "failed"] as const) runImages.set({ run: s.runId, state }, s[state]);
}

const queueStates = ["waiting", "active", "delayed", "failed", "waiting-children"] as const;
const watchedQueues = new Set<Queue>();
/** A scrape must not hang on a slow or unreachable Redis: the queue gauges are left out instead. */
const QUEUE_COUNT_TIMEOUT_MS = 2000;

new Gauge({
  name: "maskfleet_queue_jobs",
  help: "Jobs in each queue by state, read from Redis at scrape time",
  labelNames: ["queue", "state"],
  registers: [registry],
  async collect() {
    this.reset();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${QUEUE_COUNT_TIMEOUT_MS} ms`)), QUEUE_COUNT_TIMEOUT_MS)));
    try {
      const counts = await Promise.race([Promise.all([...watchedQueues].map(async (q) => ({ queue: q.name, counts: await q.getJobCounts(...queueStates) }))), timeout]);
      for (const { queue, counts: c } of counts) for (const state of queueStates) this.set({ queue, state }, c[state] ?? 0);
    } catch (err) {
      log.warn({ err: (err as Error).message }, "queue depth not read for this scrape");
    } finally {
      clearTimeout(timer);
    }
  },
});

/** Reports these queues' depths on every scrape; returns the function that stops it. */
export function watchQueues(queues: Iterable<Queue>): () => void {
  const added = [...queues];
  for (const q of added) watchedQueues.add(q);
  return () => added.forEach((q) => watchedQueues.delete(q));
}

export const DEFAULT_METRICS_PORT = 9464;

/**
 * Connections the endpoint holds at once; the ones over it are closed as they arrive. Prometheus
 * needs one per scraper; without a cap, idle connections (a port scan, a misbehaving client) once
 * took a worker's file descriptors until its jobs failed with EMFILE.
 */
export const METRICS_MAX_CONNECTIONS = 64;

export interface MetricsServerLimits {
  /** Connections held at once (default METRICS_MAX_CONNECTIONS). */
  maxConnections?: number;
  /** A connection with no traffic for this long is closed (default 5 s). */
  idleTimeoutMs?: number;
  /** A request's headers must have arrived within this (default 5 s). */
  headersTimeoutMs?: number;
  /** A whole request must have arrived within this (default 10 s). */
  requestTimeoutMs?: number;
  /** A kept-alive connection waits this long for the next request (default 5 s). */
  keepAliveTimeoutMs?: number;
}

const defaultLimits: Required<MetricsServerLimits> = {
  maxConnections: METRICS_MAX_CONNECTIONS,
  idleTimeoutMs: 5000,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
};

export interface MetricsServer {
  readonly port: number;
  /** The address it listens on, as a URL: http://127.0.0.1:9464/metrics, http://0.0.0.0:9464/metrics. */
  readonly url: string;
  /** The same for people: "(all interfaces)" after a wildcard address. */
  readonly shown: string;
  /** Connections open now. */
  connections(): Promise<number>;
  close(): Promise<void>;
}

/** The URL of a listening address, and the same for people (a wildcard address is said to mean all interfaces). */
export function metricsAddress(address: Pick<AddressInfo, "address" | "family" | "port">): { url: string; shown: string } {
  const host = address.family === "IPv6" || address.address.includes(":") ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/metrics`;
  const wildcard = address.address === "0.0.0.0" || address.address === "::";
  return { url, shown: wildcard ? `${url} (all interfaces)` : url };
}

let defaultsCollected = false;

/**
 * Serves the registry at GET /metrics on `host`:`port`, with the process's CPU, memory and
 * event-loop metrics; and the health checks: GET /healthz (200 while the process runs) and GET
 * /ready (200 once every pool of the process has warmed up and takes jobs, 503 before: see
 * src/runtime/readiness.ts). Port 0: any free port. No port: 9464, or any free port when 9464 is taken
 * (several processes on one host); a port given and taken is a ConfigError naming metricsPort.
 * At most `maxConnections` at once; idle and slow connections are closed after a few seconds.
 */
export async function startMetricsServer(port: number | undefined, host = "0.0.0.0", limits: MetricsServerLimits = {}): Promise<MetricsServer> {
  if (!defaultsCollected) {
    collectDefaultMetrics({ register: registry });
    defaultsCollected = true;
  }
  const l = { ...defaultLimits, ...limits };
  let server: Server;
  try {
    server = await listen(port ?? DEFAULT_METRICS_PORT, host, l).catch((err: NodeJS.ErrnoException) => {
      if (port === undefined && err.code === "EADDRINUSE") return listen(0, host, l);
      throw err;
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(
      e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" ? "metricsHost" : "metricsPort",
      e.code === "EADDRINUSE"
        ? `port ${port} on ${host} is in use (give each process on a host its own port, or 0 for any free one)`
        : `cannot listen on ${host}:${port ?? DEFAULT_METRICS_PORT}: ${e.message}`,
    );
  }
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    ...metricsAddress(address),
    connections: () => new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // Prometheus keeps its connection open between scrapes
      }),
  };
}

function listen(port: number, host: string, limits: Required<MetricsServerLimits>): Promise<Server> {
  const server = createServer(
    // Node checks the header and request timeouts of open connections at this interval (default 30 s).
    { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) },
    (req, res) => {
      const path = req.method === "GET" ? new URL(req.url ?? "/", "http://x").pathname : undefined;
      const text = (status: number, body: string) => void res.writeHead(status, { "content-type": "text/plain" }).end(`${body}\n`);
      if (path === "/healthz") return text(200, "ok");
      if (path === "/ready") return isReady() ? text(200, "ready") : text(503, "warming up");
      if (path !== "/metrics") return text(404, "not found: GET /metrics, /ready or /healthz");
      registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
        (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`${err.message}\n`),
      );
    },
  );
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // A socket with no traffic at all for this long is destroyed (the http server's default on 'timeout').
  server.setTimeout(limits.idleTimeoutMs);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** Set by the generate pool: mode "fixed" (the configured --rate) or "adaptive" (src/rate/adaptive-rate.ts). */
export const generateRate = gauge(
  "maskfleet_generate_rate_per_second",
  "Generator requests per second in force for the fleet: the configured --rate, or the adaptive rate the fleet found",
  ["mode"],
);
