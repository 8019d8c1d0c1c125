/**
 * Prometheus metrics: a real fleet (tiny SAM graphs, composite) runs a small catalog with one bad
 * file while its metrics endpoint is scraped over HTTP; the counts must match what happened (jobs,
 * steps, images finished per run and outcome, busy seconds, the pool label on every series). Then
 * every metric the Grafana board queries must be in that exposition, the board must fit any
 * Grafana (datasource variable, no job names, $__rate_interval), the scrape config and the
 * Prometheus Operator's PodMonitor must point at the processes, and a worker process must print
 * its endpoint and serve it. test/prometheus.test.ts runs the board's queries in a real Prometheus.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { resolveConfig, type Config } from "../src/config/config.js";
import { ConfigError } from "../src/runtime/errors.js";
import { DEFAULT_METRICS_PORT, imageFinished, poolLabelOf, registry, startMetricsServer, type MetricsServer } from "../src/runtime/metrics.js";
import { stages } from "../src/pipeline/queues.js";
import type { DataOf } from "../src/pipeline/jobs.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import { maskfleetVersion } from "../src/runtime/version.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { kustomize, type Manifest } from "./deploy/kustomize.js";
import { cliEntry, freshRedis, repoRoot, samples, scratchDir, tinyModels, type Sample } from "./helpers.js";

/** The value of the one series of `name` whose labels include `labels`. */
function valueOf(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one series ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return (found[0] as Sample).value;
}

/** PromQL words that are not metric names. */
const promqlWords = new Set(
  ["sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "avg_over_time", "max_over_time", "topk", "bottomk", "abs", "clamp_min"].concat([
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
  ]),
);

/** The metric names a PromQL expression reads: identifiers outside strings, label matchers, ranges and label lists, not called as functions. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.$])[a-zA-Z_:][\w:]*/g)) {
    const called = bare
      .slice(m.index + m[0].length)
      .trimStart()
      .startsWith("(");
    if (!called && !promqlWords.has(m[0].toLowerCase())) names.add(m[0]);
  }
  return [...names];
}

/** Those of `names` the exposition does not have: no sample and no TYPE line, also for a histogram's _bucket/_sum/_count. */
function missingFrom(exposition: string, names: string[]): string[] {
  const types = new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  const sampled = new Set(samples(exposition).map((s) => s.name));
  return names.filter((name) => {
    if (types.has(name) || sampled.has(name)) return false;
    const base = name.replace(/_(bucket|sum|count)$/, "");
    return !(base !== name && ["histogram", "summary"].includes(types.get(base) ?? ""));
  });
}

/** Every PromQL expression of a Grafana dashboard, rows' nested panels included. */
function dashboardExprs(dashboard: { panels?: unknown[] }): string[] {
  const exprs: string[] = [];
  const visit = (panels: unknown[] = []) => {
    for (const p of panels as { targets?: { expr?: string }[]; panels?: unknown[] }[]) {
      for (const t of p.targets ?? []) if (t.expr) exprs.push(t.expr);
      visit(p.panels);
    }
  };
  visit(dashboard.panels);
  return exprs;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; datasource?: { type?: string; uid?: string } }[];
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: Panel[];
}

/** Every panel of a Grafana dashboard but rows, rows' nested panels included. */
function dashboardPanels(dashboard: { panels?: Panel[] }): Panel[] {
  return (dashboard.panels ?? []).flatMap((p) => (p.type === "row" ? dashboardPanels(p) : [p]));
}

const photos = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"];
const prompts = ["studio white background", "sunny beach"];

describe("metrics", () => {
  let config: Config;
  let fleet: Fleet;
  let server: MetricsServer;
  let exposition = "";
  /** Scraped before the fleet started: the process runs no pool yet. */
  let beforeFleet = "";
  /** Seconds from the fleet's start to the scrape. */
  let wallSeconds = 0;

  before(async () => {
    const redisUrl = await freshRedis(2);
    const models = await tinyModels();
    const dir = await scratchDir("metrics");
    await scratchDir("metrics/in");
    for (const p of photos) await copyFile(join(repoRoot, "samples/photos", p), join(dir, "in", p));
    await writeFile(join(dir, "in", "notes.jpg"), "Hello, this is a text file with a .jpg name.\n");
    config = resolveConfig({ target: "auto", samModel: models.sam, out: join(dir, "out"), redisUrl, prompts, seeds: { from: 1, to: 2 }, attempts: 2 });
    server = await startMetricsServer(0, "127.0.0.1");
    beforeFleet = await (await fetch(server.url)).text();
    const started = performance.now();
    fleet = startFleet(config, stages);
    await enqueueImages(fleet.ctx.redis, config, "metrics-run", discoverInputs([join(dir, "in")]));
    const status = await waitForRun(fleet.ctx.redis, "metrics-run", { intervalMs: 200, timeoutMs: 60_000 });
    assert.deepEqual([status.succeeded, status.failed], [3, 1]);
    const res = await fetch(server.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    exposition = await res.text();
    wallSeconds = (performance.now() - started) / 1000;
  });

  after(async () => {
    await fleet?.close();
    await server?.close();
  });

  it("counts each stage's jobs, the bad file's failure by class, the steps, queue depth, the ONNX provider, process memory", () => {
    const all = samples(exposition);
    const results = photos.length * prompts.length * 2;
    for (const [stage, n] of [
      ["detect", 3],
      ["mask", 3],
      ["generate", results],
      ["finalize", 3],
    ] as const) {
      assert.equal(valueOf(all, "maskfleet_jobs_completed_total", { stage }), n, `${stage} completed`);
      assert.equal(valueOf(all, "maskfleet_stage_duration_seconds_count", { stage }), n, `${stage} durations`);
      assert.equal(valueOf(all, "maskfleet_jobs_active", { stage }), 0);
    }
    // notes.jpg is text: refused at detect as bad input, not retried.
    assert.equal(valueOf(all, "maskfleet_jobs_failed_total", { stage: "detect", reason: "input" }), 1);
    // Each class a job can fail or retry with is there from the pool's start, at 0 but this one.
    const nonZero = (name: string) => all.filter((s) => s.name === name && s.value !== 0).map((s) => `${s.labels.stage} ${s.labels.reason}`);
    assert.deepEqual(nonZero("maskfleet_jobs_failed_total"), ["detect input"], "no other failure");
    assert.deepEqual(nonZero("maskfleet_jobs_retried_total"), [], "no retries");
    assert.equal(valueOf(all, "maskfleet_jobs_failed_total", { stage: "generate", reason: "transient" }), 0);
    assert.equal(valueOf(all, "maskfleet_jobs_retried_total", { stage: "mask", reason: "transient" }), 0);
    assert.equal(valueOf(all, "maskfleet_rate_limit_pauses_total", { queue: "generate" }), 0);
    assert.equal(valueOf(all, "maskfleet_worker_concurrency", { stage: "generate" }), config.concurrency.generate);
    assert.equal(valueOf(all, "maskfleet_generator_requests_total", { generator: "composite", outcome: "ok" }), results);
    assert.equal(valueOf(all, "maskfleet_throttles_total", { stage: "generate" }), 0);

    const steps = (step: string) => valueOf(all, "maskfleet_step_duration_seconds_count", { step });
    assert.equal(steps("sam_encode"), 3, "the encoder ran once per good image");
    assert.equal(steps("sam_decode"), 3);
    // detect, mask, generate (once per photo in this process, not per result), finalize read the input: 4 + 3 + 3 + 3; the bad one fails decoding.
    assert.equal(steps("input_read"), 4 + 3 + 3 + 3);
    assert.equal(steps("image_decode"), 4 + 3 + 3 + 3);
    // detections; mask, Bedrock mask, cutout, mask.json; results; contact sheet and manifest.
    assert.equal(steps("store_write"), 3 + 4 * 3 + results + 2 * 3);
    assert.equal(steps("generate_request"), results);
    // Looked up before any work: stored detections (4 images), a stored mask (3 good ones), each result.
    assert.ok(steps("store_read") > 0);
    assert.equal(steps("store_exists"), 4 + 3 + results);
    assert.ok(valueOf(all, "maskfleet_step_duration_seconds_sum", { step: "sam_encode" }) > 0);

    for (const queue of stages) {
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue, state: "waiting" }), 0, `${queue} waiting`);
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue, state: "active" }), 0, `${queue} active`);
      // A job that failed for good is recorded in its run and leaves the queue.
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue, state: "failed" }), 0, `${queue} failed`);
    }
    assert.equal(valueOf(all, "maskfleet_onnx_session_info", { model: "sam-tiny", task: "segment", ep: "cpu" }), 1);
    assert.ok(valueOf(all, "process_resident_memory_bytes") > 20e6);
    assert.ok(valueOf(all, "process_cpu_seconds_total") > 0);
  });

  it("the producer exports the watched run's images; the workers count each image finished, by outcome", () => {
    const all = samples(exposition);
    const run = "metrics-run";
    assert.deepEqual(
      ["total", "finished", "succeeded", "failed"].map((state) => valueOf(all, "maskfleet_run_images", { run, state })),
      [4, 4, 3, 1],
    );
    assert.equal(all.filter((s) => s.name === "maskfleet_run_images_per_minute").length, 0, "the old gauge is gone");
    const finished = all.filter((s) => s.name === "maskfleet_run_images_finished_total");
    assert.deepEqual(Object.fromEntries(finished.map((s) => [`${s.labels.run} ${s.labels.outcome}`, s.value])), {
      "metrics-run ok": 3,
      "metrics-run failed": 1,
      "metrics-run review": 0,
    });
  });

  it("busy seconds: every job's time, at most wall time x concurrency", () => {
    const all = samples(exposition);
    for (const stage of stages) {
      const busy = valueOf(all, "maskfleet_worker_busy_seconds_total", { stage });
      const completed = valueOf(all, "maskfleet_stage_duration_seconds_sum", { stage });
      const most = wallSeconds * config.concurrency[stage];
      // The completed jobs' durations (Date.now, ms) fit in the busy time (performance.now), which also has detect's failed job.
      assert.ok(
        busy > 0 && busy >= completed - 0.002 * valueOf(all, "maskfleet_stage_duration_seconds_count", { stage }),
        `${stage}: busy ${busy} s, completed jobs ${completed} s`,
      );
      assert.ok(busy <= most, `${stage}: busy ${busy} s > ${wallSeconds} s x ${config.concurrency[stage]}`);
    }
  });

  it("build_info and the pool label: `all` on every series of a process running the four pools, `producer` before", () => {
    const all = samples(exposition);
    const onnxruntime = (JSON.parse(readFileSync(createRequire(import.meta.url).resolve("onnxruntime-node/package.json"), "utf8")) as { version: string }).version;
    const info = all.filter((s) => s.name === "maskfleet_build_info");
    assert.deepEqual(
      info.map((s) => [s.labels, s.value]),
      [[{ version: maskfleetVersion(), node_version: process.version, onnxruntime_version: onnxruntime, pool: "all" }, 1]],
    );
    assert.match(maskfleetVersion(), /^\d+\.\d+\.\d+/);
    assert.deepEqual(
      all.filter((s) => s.labels.pool !== "all"),
      [],
      "every series carries pool=all",
    );
    for (const name of ["process_resident_memory_bytes", "process_cpu_seconds_total", "nodejs_heap_size_used_bytes"]) assert.ok(valueOf(all, name, { pool: "all" }) > 0, name);
    const before = samples(beforeFleet);
    assert.equal(valueOf(before, "maskfleet_build_info", { pool: "producer" }), 1);
    assert.ok(before.length > 10 && before.every((s) => s.labels.pool === "producer"));
    assert.deepEqual([["detect"], ["mask", "mask"], [...stages].reverse(), ["finalize", "detect"]].map(poolLabelOf), ["detect", "mask", "all", "detect+finalize"]);
  });

  it("a process keeps the images-finished series of its last 100 runs", async () => {
    for (let i = 0; i < 100; i++) imageFinished(`cap-${i}`, "ok"); // metrics-run goes
    imageFinished("cap-0", "review"); // seen again: the oldest is now cap-1
    imageFinished("cap-100", "ok");
    const runs = new Set(
      samples(await registry.metrics())
        .filter((s) => s.name === "maskfleet_run_images_finished_total")
        .map((s) => s.labels.run),
    );
    assert.equal(runs.size, 100);
    for (const [run, kept] of [
      ["metrics-run", false],
      ["cap-1", false],
      ["cap-2", true],
      ["cap-0", true],
      ["cap-100", true],
    ] as const)
      assert.equal(runs.has(run), kept, run);
  });

  it("serves only GET /metrics", async () => {
    assert.equal((await fetch(server.url.replace("/metrics", "/"))).status, 404);
    assert.equal((await fetch(server.url, { method: "POST" })).status, 404);
  });

  it("every metric the Grafana board queries is exported", async () => {
    const dashboard = JSON.parse(await readFile(join(repoRoot, "deploy/grafana/dashboards/maskfleet.json"), "utf8"));
    const exprs = dashboardExprs(dashboard);
    assert.ok(exprs.length >= 15, `${exprs.length} queries`);
    const names = [...new Set(exprs.flatMap(metricNames))];
    assert.ok(names.length >= 14, names.join(", "));
    assert.deepEqual(missingFrom(exposition, names), []);
    for (const name of ["maskfleet_run_images_finished_total", "maskfleet_worker_busy_seconds_total", "maskfleet_build_info"]) assert.ok(names.includes(name), name);
  });

  it("the board fits any Grafana: a datasource variable, no job names, $__rate_interval, pool/instance/run variables", async () => {
    const dashboard = JSON.parse(await readFile(join(repoRoot, "deploy/grafana/dashboards/maskfleet.json"), "utf8"));
    const vars = dashboard.templating.list as { type: string; name: string; query: unknown; multi?: boolean; includeAll?: boolean; datasource?: { uid?: string } }[];
    assert.deepEqual(
      vars.map((v) => [v.type, v.name]),
      [
        ["datasource", "datasource"],
        ["query", "pool"],
        ["query", "instance"],
        ["query", "run"],
      ],
    );
    assert.equal(vars[0]?.query, "prometheus");
    for (const v of vars.slice(1)) {
      assert.ok(v.multi && v.includeAll, `${v.name}: multi, with All`);
      assert.equal(v.datasource?.uid, "${datasource}");
      assert.match(String(v.query), new RegExp(`^label_values\\(maskfleet_\\w+(\\{[^}]*\\})?, ${v.name}\\)$`));
    }
    const panels = dashboardPanels(dashboard);
    for (const p of panels) {
      for (const ds of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) assert.deepEqual(ds, { type: "prometheus", uid: "${datasource}" }, p.title);
    }
    assert.doesNotMatch(JSON.stringify(dashboard), /maskfleet-prometheus/, "no data source uid");
    for (const expr of dashboardExprs(dashboard)) {
      assert.doesNotMatch(expr, /\bjob\s*=/, `no job names: ${expr}`);
      for (const window of expr.matchAll(/\[([^\]]*)\]/g)) assert.equal(window[1], "$__rate_interval", expr);
      if (/maskfleet_run_/.test(expr)) assert.match(expr, /run=~"\$run"/, expr);
      else assert.match(expr, /pool=~"\$pool", instance=~"\$instance"/, expr);
    }
    // Per-minute panels say so.
    for (const p of panels.filter((p) => (p.targets ?? []).some((t) => /\* 60$/.test(t.expr ?? "")))) assert.equal(p.fieldConfig?.defaults?.unit, "opm", p.title);
    // The memory and CPU panels pick maskfleet's processes by build_info, not by job.
    for (const title of ["Resident memory per process", "CPU per process (cores)"]) {
      assert.match(panels.find((p) => p.title === title)?.targets?.[0]?.expr ?? "", /and on \(job, instance\) maskfleet_build_info$/, title);
    }
    // Compose's Grafana: the provisioned Prometheus is the default data source, which the variable starts on.
    const provisioned = parseYaml(await readFile(join(repoRoot, "deploy/grafana/provisioning/datasources/prometheus.yml"), "utf8"));
    assert.deepEqual([provisioned.datasources[0].type, provisioned.datasources[0].isDefault], ["prometheus", true]);
  });

  it("the board check can fail: names come out of PromQL, and an invented one is reported missing", () => {
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le, stage) (rate(maskfleet_stage_duration_seconds_bucket{stage=~"mask|detect"}[1m])))'), [
      "maskfleet_stage_duration_seconds_bucket",
    ]);
    assert.deepEqual(metricNames("sum by (instance) (avg_over_time(maskfleet_jobs_active[1m])) / on (instance) maskfleet_worker_concurrency > 0"), [
      "maskfleet_jobs_active",
      "maskfleet_worker_concurrency",
    ]);
    const invented = metricNames('sum(rate(maskfleet_invented_total{reason="input"}[5m])) + maskfleet_jobs_completed_total_bucket');
    assert.deepEqual(missingFrom(exposition, invented), ["maskfleet_invented_total", "maskfleet_jobs_completed_total_bucket"]);
  });

  it("the Prometheus config finds every pool's and the producer's containers and scrapes /metrics every 5 s", async () => {
    const prom = parseYaml(await readFile(join(repoRoot, "deploy/prometheus/prometheus.yml"), "utf8"));
    assert.equal(prom.global.scrape_interval, "5s");
    const jobs = prom.scrape_configs as { job_name: string; metrics_path?: string; dns_sd_configs: { names: string[]; type: string; port: number }[] }[];
    for (const j of jobs) assert.equal(j.metrics_path ?? "/metrics", "/metrics");
    // Each process exports its pool: a target label `pool` would rename it to exported_pool.
    for (const j of jobs) assert.ok(!((j as { relabel_configs?: { target_label?: string }[] }).relabel_configs ?? []).some((r) => r.target_label === "pool"), j.job_name);
    const sd = jobs.flatMap((j) => j.dns_sd_configs);
    assert.ok(sd.every((d) => d.type === "A" && d.port === DEFAULT_METRICS_PORT));
    const names = sd.flatMap((d) => d.names);
    for (const name of [...stages, "producer"]) assert.ok(names.includes(name), name);
    // The names are the compose services, which set that port.
    const compose = parseYaml(await readFile(join(repoRoot, "deploy/docker-compose.yml"), "utf8"), { merge: true });
    for (const name of names) assert.ok(compose.services[name], `${name} is a compose service`);
    assert.equal(compose["x-maskfleet-env"].MASKFLEET_METRICS_PORT, String(DEFAULT_METRICS_PORT));
  });

  it("a port given and taken fails naming metricsPort; with none given, a taken 9464 gives way to a free port", async () => {
    const taken = await startMetricsServer(0, "127.0.0.1");
    try {
      await assert.rejects(
        startMetricsServer(taken.port, "127.0.0.1"),
        (err: unknown) => err instanceof ConfigError && /^metricsPort: port \d+ on 127\.0\.0\.1 is in use/.test(err.message),
      );
    } finally {
      await taken.close();
    }
    // Hold 9464 (unless something else already does), then ask for the default.
    const holder = createServer();
    await new Promise<void>((resolve) => holder.once("error", () => resolve()).listen(DEFAULT_METRICS_PORT, "127.0.0.1", resolve));
    const fallback = await startMetricsServer(undefined, "127.0.0.1");
    try {
      assert.notEqual(fallback.port, DEFAULT_METRICS_PORT);
      assert.equal((await fetch(fallback.url)).status, 200);
    } finally {
      await fallback.close();
      holder.close();
    }
  });

  it("a worker process names its endpoint in its start line and serves it; SIGTERM closes it", async () => {
    // A job waiting a minute in a queue no worker here serves: the depth the worker reads from Redis.
    const later = await fleet.ctx.queues.mask.add("mask", {} as DataOf<"mask">, { delay: 60_000, jobId: "metrics-later" });
    const child = spawn(process.execPath, [cliEntry(), "worker", "finalize", "--redis", config.redisUrl, "--metrics-port", "0"], {
      env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      const deadline = Date.now() + 20_000;
      while (!/metrics on (\S+)/.test(stderr) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      const url = /finalize worker \d+ started \(concurrency 2\), metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(stderr)?.[1];
      assert.ok(url, stderr);
      const all = samples(await (await fetch(url)).text());
      assert.equal(valueOf(all, "maskfleet_worker_concurrency", { stage: "finalize" }), 2);
      // `worker finalize`: pool=finalize on every series, the process's own metrics too.
      assert.equal(valueOf(all, "maskfleet_build_info", { pool: "finalize", version: maskfleetVersion() }), 1);
      assert.ok(valueOf(all, "process_resident_memory_bytes", { pool: "finalize" }) > 0);
      assert.deepEqual(
        all.filter((s) => s.labels.pool !== "finalize"),
        [],
      );
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue: "mask", state: "delayed" }), 1, "the queues' depths, read from Redis");
      assert.ok(valueOf(all, "process_resident_memory_bytes") > 0);
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      await assert.rejects(fetch(url), "the endpoint is closed");
    } finally {
      await later.remove();
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});

/** Fields of the Prometheus Operator's PodMonitor (monitoring.coreos.com/v1) that we may use: no schema package has them. */
const podMonitorFields = {
  spec: ["selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels", "sampleLimit", "targetLimit", "labelLimit", "attachMetadata", "scrapeClass"],
  endpoint: ["port", "portNumber", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels", "honorTimestamps", "relabelings", "metricRelabelings", "filterRunning"],
  selector: ["matchLabels", "matchExpressions"],
};
/** The Operator's duration pattern (a Prometheus duration). */
const duration = /^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$/;
const seconds = (d: string) =>
  [...d.matchAll(/(\d+)(ms|[ywdhms])/g)].reduce((t, [, n, u]) => t + Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 }[u as "s"], 0);

interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] };
}
interface PodMonitor {
  spec: {
    selector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
    namespaceSelector?: { matchNames?: string[]; any?: boolean };
    podMetricsEndpoints: { port?: string; path?: string; interval?: string; scrapeTimeout?: string }[];
  };
}

/** What a PodMonitor selects of these pods and scrapes on them, or why it is wrong: problems first, then per pod "<name> <port> <path>". */
function podMonitorProblems(monitors: readonly Manifest[], pods: readonly { name: string; namespace?: string; template: PodTemplate }[]): string[] {
  const problems: string[] = [];
  const unknown = (where: string, o: object, allowed: string[]) =>
    Object.keys(o)
      .filter((k) => !allowed.includes(k))
      .forEach((k) => problems.push(`${where}: unknown field ${k}`));
  for (const m of monitors) {
    const where = `${m.kind} ${m.metadata.name}`;
    if (m.apiVersion !== "monitoring.coreos.com/v1" || m.kind !== "PodMonitor") problems.push(`${where}: not a monitoring.coreos.com/v1 PodMonitor`);
    const { spec } = m as unknown as PodMonitor;
    unknown(where, spec, podMonitorFields.spec);
    unknown(`${where} selector`, spec.selector, podMonitorFields.selector);
    if (!spec.podMetricsEndpoints?.length) problems.push(`${where}: no podMetricsEndpoints`);
    const selects = (t: PodTemplate) =>
      Object.entries(spec.selector.matchLabels ?? {}).every(([k, v]) => t.metadata.labels[k] === v) &&
      (spec.selector.matchExpressions ?? []).every((e) => {
        if (e.operator === "In") return (e.values ?? []).includes(t.metadata.labels[e.key] ?? "\0");
        if (e.operator === "Exists") return e.key in t.metadata.labels;
        problems.push(`${where}: operator ${e.operator} not checked here`);
        return false;
      });
    for (const pod of pods) {
      const inNamespace = spec.namespaceSelector?.any || (spec.namespaceSelector?.matchNames ?? [m.metadata.namespace]).includes(pod.namespace);
      if (!inNamespace || !selects(pod.template)) continue;
      for (const e of spec.podMetricsEndpoints ?? []) {
        unknown(`${where} endpoint`, e, podMonitorFields.endpoint);
        for (const d of [e.interval, e.scrapeTimeout]) if (d !== undefined && !duration.test(d)) problems.push(`${where}: ${d} is not a duration`);
        if (e.interval && e.scrapeTimeout && seconds(e.scrapeTimeout) > seconds(e.interval)) problems.push(`${where}: scrapeTimeout over interval`);
        const ports = pod.template.spec.containers.flatMap((c) => c.ports ?? []);
        const port = ports.find((p) => p.name === e.port);
        if (!port) problems.push(`${pod.name}: no container port named ${e.port}`);
        problems.push(`${pod.name} ${port?.containerPort} ${e.path ?? "/metrics"}`);
      }
    }
  }
  return problems;
}

describe("Prometheus Operator objects (deploy/k8s/monitoring)", () => {
  const dir = join(repoRoot, "deploy/k8s/monitoring");
  const monitors = kustomize(dir);
  /** Every pod template of the base and the overlays, with its namespace. */
  const pods = ["base", "overlays/gpu", "overlays/dev"].flatMap((build) =>
    kustomize(join(repoRoot, "deploy/k8s", build))
      .filter((m) => m.kind === "Deployment" || m.kind === "StatefulSet")
      .map((m) => ({ name: `${build}: ${m.metadata.name}`, namespace: m.metadata.namespace, template: (m.spec as { template: PodTemplate }).template })),
  );
  const workers = pods.filter((p) => /: maskfleet-(detect|mask|generate|finalize)$/.test(p.name));

  it("a PodMonitor in the maskfleet namespace scrapes every pool's pods, and nothing else, where their annotations say", () => {
    assert.deepEqual(
      monitors.map((m) => [m.apiVersion, m.kind, m.metadata.namespace]),
      [["monitoring.coreos.com/v1", "PodMonitor", "maskfleet"]],
    );
    assert.equal(workers.length, 3 * stages.length);
    const scraped = podMonitorProblems(monitors, pods);
    // The annotations' port and path, which the port named in the PodMonitor serves.
    const expected = workers.map((p) => {
      const a = p.template.metadata.annotations ?? {};
      assert.equal(a["prometheus.io/scrape"], "true", p.name);
      return `${p.name} ${a["prometheus.io/port"]} ${a["prometheus.io/path"]}`;
    });
    assert.deepEqual(scraped.sort(), expected.sort());
    assert.ok(expected.every((e) => e.endsWith(` ${DEFAULT_METRICS_PORT} /metrics`)));
  });

  it("the check rejects a misspelt field, a port the pods do not name, a selector that misses them", () => {
    const broken = (edit: (spec: PodMonitor["spec"]) => void) => {
      const m = structuredClone(monitors[0]) as Manifest;
      edit((m as unknown as PodMonitor).spec);
      return podMonitorProblems([m], workers).filter((p) => !/ \d+ \/metrics$/.test(p));
    };
    assert.deepEqual(broken((s) => Object.assign(s.podMetricsEndpoints[0] as object, { scrapeInterval: "5s" })).length, workers.length);
    assert.match(broken((s) => ((s.podMetricsEndpoints[0] as { port: string }).port = "http")).join("\n"), /no container port named http/);
    assert.deepEqual(
      broken((s) => Object.assign(s, { podMetricEndpoints: [] })),
      ["PodMonitor maskfleet-workers: unknown field podMetricEndpoints"],
    );
    assert.match(broken((s) => ((s.podMetricsEndpoints[0] as { interval: string }).interval = "15 s")).join("\n"), /15 s is not a duration/);
    const none = structuredClone(monitors[0]) as Manifest;
    (none as unknown as PodMonitor).spec.selector.matchLabels = { "app.kubernetes.io/name": "maskfleet-workers" };
    assert.deepEqual(podMonitorProblems([none], workers), []);
  });

  it("matches `kubectl kustomize` (where kubectl is installed)", (t) => {
    if (spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status !== 0) {
      t.skip("kubectl is not installed");
      return;
    }
    const out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
    assert.deepEqual(
      out
        .split(/^---$/m)
        .map((d) => parseYaml(d) as Manifest)
        .filter(Boolean),
      monitors,
    );
  });
});
