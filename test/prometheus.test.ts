/**
 * The Grafana board against a real Prometheus (Debian's /usr/bin/prometheus, slower tier: ~20 s).
 * Two maskfleet processes on a private redis-server: this one, running all four pools (pool
 * "all"), and a `maskfleet worker finalize` child (pool "finalize"), each scraped every second
 * under a job name the board knows nothing of. Two runs go through: one with a text file named
 * .jpg (fails at detect), a mask.json write that fails once (a retry) and a fixed --rate (the rate
 * gauge), one held for review (minMaskQuality 1). Then every query of the board, its variables
 * substituted as Grafana does, is evaluated through Prometheus's HTTP API: each must return
 * series, now and with real values during the run, and $pool/$instance must narrow them.
 *
 * No panel is left without data here: throttles and queue pauses are series at 0 from each pool's
 * start, the composite generator fills the generator panel, and the fixed --rate the rate gauge.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveConfig, type Config } from "../src/config/config.js";
import { startMetricsServer, type MetricsServer } from "../src/runtime/metrics.js";
import { stages } from "../src/pipeline/queues.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import type { Store } from "../src/storage/store.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { cliEntry, freshRedis, repoRoot, scratchDir, sleep, storeWithWrite, tinyModels, until } from "./helpers.js";
import { freePort } from "./scenarios/redis-server.js";

const prometheusBinary = "/usr/bin/prometheus";
const scrapeSeconds = 1;
/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval); the data source's timeInterval is the scrape interval. */
const rateInterval = `${4 * scrapeSeconds}s`;

interface Target {
  expr: string;
  panel: string;
}

/** Every query of the board with its panel's title, rows' nested panels included. */
function boardTargets(panels: unknown[] = []): Target[] {
  return (panels as { title: string; targets?: { expr?: string }[]; panels?: unknown[] }[]).flatMap((p) => [
    ...(p.targets ?? []).flatMap((t) => (t.expr ? [{ expr: t.expr, panel: p.title }] : [])),
    ...boardTargets(p.panels),
  ]);
}

/** A variable's value as Grafana puts it into a regex matcher: All is its allValue (".*"), several values an alternation. */
function variableValue(values: "All" | readonly string[]): string {
  if (values === "All") return ".*";
  const escaped = values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\\\$&"));
  return escaped.length === 1 ? (escaped[0] as string) : `(${escaped.join("|")})`;
}

type Vars = Record<"pool" | "instance" | "run", "All" | readonly string[]>;
const all: Vars = { pool: "All", instance: "All", run: "All" };

/** The query Grafana sends for these variable values. */
function substitute(expr: string, vars: Vars): string {
  return expr.replaceAll("$__rate_interval", rateInterval).replace(/\$(pool|instance|run)\b/g, (_, name: keyof Vars) => variableValue(vars[name]));
}

interface Series {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

describe("the Grafana board in a real Prometheus", () => {
  let prometheus: ChildProcess;
  let promUrl = "";
  let promLog = "";
  let fleet: Fleet;
  let server: MetricsServer;
  let child: ChildProcess;
  let childInstance = "";
  let startedAt = 0;
  let targets: Target[] = [];
  let variables: { name: string; query: string }[] = [];

  /** /api/v1/<path> of the test's Prometheus: its data, or an error naming the query. */
  async function api<T>(path: string, params: Record<string, string | number>): Promise<T> {
    const res = await fetch(`${promUrl}/api/v1/${path}?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  }
  const instant = async (query: string) => (await api<{ result: Series[] }>("query", { query, time: Date.now() / 1000 })).result;
  const range = async (query: string) => (await api<{ result: Series[] }>("query_range", { query, start: startedAt / 1000, end: Date.now() / 1000, step: scrapeSeconds })).result;

  /** What is wrong with a board query: an error from Prometheus, or no series now. */
  async function problemOf(expr: string, vars: Vars = all): Promise<string | undefined> {
    try {
      const series = await instant(substitute(expr, vars));
      return series.length ? undefined : `no series: ${substitute(expr, vars)}`;
    } catch (err) {
      return (err as Error).message;
    }
  }

  before(async () => {
    const redisUrl = await freshRedis(3);
    const models = await tinyModels();
    const dir = await scratchDir("prometheus");
    for (const sub of ["in", "review", "tsdb"]) await scratchDir(`prometheus/${sub}`);
    for (const p of ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]) await copyFile(join(repoRoot, "samples/photos", p), join(dir, "in", p));
    await writeFile(join(dir, "in", "notes.jpg"), "Hello, this is a text file with a .jpg name.\n");
    for (const p of ["rocket.jpg", "retina.jpg"]) await copyFile(join(repoRoot, "samples/photos", p), join(dir, "review", p));
    const base = { target: "auto", samModel: models.sam, redisUrl, prompts: ["studio white background", "sunny beach"], seeds: { from: 1, to: 2 }, attempts: 2 } as const;
    const config: Config = resolveConfig({ ...base, out: join(dir, "out"), rate: { max: 1000, durationMs: 1000 } });
    const reviewed: Config = resolveConfig({ ...base, out: join(dir, "out-review"), minMaskQuality: 1 });

    const dashboard = JSON.parse(await readFile(join(repoRoot, "deploy/grafana/dashboards/maskfleet.json"), "utf8")) as {
      panels: unknown[];
      templating: { list: { type: string; name: string; query: string }[] };
    };
    targets = boardTargets(dashboard.panels);
    variables = dashboard.templating.list.filter((v) => v.type === "query");

    // The finalize worker: a process of its own, started while this one gets ready.
    child = spawn(process.execPath, [cliEntry(), "worker", "finalize", "--redis", redisUrl, "--metrics-port", "0"], {
      env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let childErr = "";
    child.stderr?.on("data", (d: Buffer) => (childErr += d.toString()));

    server = await startMetricsServer(0, "127.0.0.1");
    startedAt = Date.now();
    fleet = startFleet(config, stages);
    // A disk that fails one write: the first mask.json's, once (a transient error: the job retries).
    const openStore = fleet.ctx.store.bind(fleet.ctx);
    let failedOnce = false;
    fleet.ctx.store = (root: string): Store => {
      const inner = openStore(root);
      return storeWithWrite(inner, (key, body, contentType) => {
        if (failedOnce || !key.endsWith("mask.json")) return inner.write(key, body, contentType);
        failedOnce = true;
        return Promise.reject(Object.assign(new Error(`EIO: i/o error, write ${key}`), { code: "EIO" }));
      });
    };

    await until("the finalize worker's metrics endpoint", () => /metrics on http:\/\/(127\.0\.0\.1:\d+)\/metrics/.test(childErr) || child.exitCode !== null, 30_000, 100);
    childInstance = /metrics on http:\/\/(127\.0\.0\.1:\d+)\/metrics/.exec(childErr)?.[1] ?? assert.fail(`the finalize worker did not start: ${childErr}`);

    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const promConfig = join(dir, "prometheus.yml");
    await writeFile(
      promConfig,
      [
        "global:",
        `  scrape_interval: ${scrapeSeconds}s`,
        `  scrape_timeout: ${scrapeSeconds}s`,
        `  evaluation_interval: ${scrapeSeconds}s`,
        "scrape_configs:",
        // Job names the board knows nothing of.
        "  - job_name: some-fleet",
        `    static_configs: [{ targets: ["127.0.0.1:${server.port}"] }]`,
        "  - job_name: another-name",
        `    static_configs: [{ targets: ["${childInstance}"] }]`,
        "",
      ].join("\n"),
    );
    prometheus = spawn(
      prometheusBinary,
      [`--config.file=${promConfig}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    prometheus.stderr?.on("data", (d: Buffer) => (promLog = (promLog + d.toString()).slice(-4000)));
    await until(
      "Prometheus ready",
      async () =>
        prometheus.exitCode !== null ||
        (await fetch(`${promUrl}/-/ready`).then(
          (r) => r.ok,
          () => false,
        )),
      20_000,
      100,
    );
    assert.equal(prometheus.exitCode, null, promLog);
    // Both processes scraped a few times before any work.
    await until("a few scrapes of both processes", async () => (await instant("count_over_time(up[1m]) >= 3 and up == 1")).length === 2, 20_000, 250);

    const [statusA, statusB] = await Promise.all([
      enqueueImages(fleet.ctx.redis, config, "board-run", discoverInputs([join(dir, "in")])).then(() =>
        waitForRun(fleet.ctx.redis, "board-run", { intervalMs: 200, timeoutMs: 60_000 }),
      ),
      enqueueImages(fleet.ctx.redis, reviewed, "board-review", discoverInputs([join(dir, "review")])).then(() =>
        waitForRun(fleet.ctx.redis, "board-review", { intervalMs: 200, timeoutMs: 60_000 }),
      ),
    ]);
    assert.deepEqual([statusA.succeeded, statusA.failed, statusB.review], [3, 1, 2]);
    assert.ok(failedOnce, "the mask.json write failed once");
    // Prometheus has every image's outcome, from whichever process recorded it.
    await until("Prometheus has every finished image", async () => (await instant("sum(maskfleet_run_images_finished_total) == 6")).length === 1, 10_000, 250);
    await sleep(2 * scrapeSeconds * 1000);
  });

  after(async () => {
    prometheus?.kill("SIGTERM");
    child?.kill("SIGTERM");
    await fleet?.close();
    await server?.close();
    await Promise.all([prometheus, child].map((p) => (p && p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once("exit", r)) : Promise.resolve())));
  });

  it("every board query returns series now (variables on All)", async () => {
    assert.ok(targets.length >= 20, `${targets.length} queries`);
    const problems = await Promise.all(targets.map(async (t) => [t.panel, await problemOf(t.expr)]));
    assert.deepEqual(
      problems.filter(([, problem]) => problem),
      [],
    );
  });

  it("every board query has real values during the run; throughput, failures, retries, utilisation and CPU above 0", async () => {
    const mustMove =
      /maskfleet_run_images_finished_total|maskfleet_jobs_(completed|failed|retried)_total|maskfleet_generator_requests_total|maskfleet_worker_busy_seconds_total|process_cpu_seconds_total/;
    const problems: string[] = [];
    for (const t of targets) {
      const values = (await range(substitute(t.expr, all))).flatMap((s) => (s.values ?? []).map(([, v]) => Number(v)));
      const finite = values.filter(Number.isFinite);
      if (!finite.length) problems.push(`${t.panel}: no finite value: ${t.expr}`);
      else if (mustMove.test(t.expr) && !finite.some((v) => v > 0)) problems.push(`${t.panel}: never above 0: ${t.expr}`);
    }
    assert.deepEqual(problems, []);
    // Summed over the processes, each image counted once, by whichever recorded its outcome.
    const finished = await instant("sum by (run, outcome) (maskfleet_run_images_finished_total) > 0");
    const perRun = Object.fromEntries(finished.map((s) => [`${s.metric.run} ${s.metric.outcome}`, Number(s.value?.[1])]));
    assert.deepEqual(perRun, { "board-run ok": 3, "board-run failed": 1, "board-review review": 2 });
  });

  it("the variables list the pools, instances and runs; $pool and $instance narrow every process query", async () => {
    const valuesOf = async (query: string, vars: Vars = all) => {
      const m = /^label_values\((.+), (\w+)\)$/.exec(query) ?? assert.fail(query);
      return (await api<string[]>(`label/${m[2]}/values`, { "match[]": substitute(m[1] as string, vars), start: startedAt / 1000 - 60, end: Date.now() / 1000 })).sort();
    };
    const query = (name: string) => variables.find((v) => v.name === name)?.query ?? assert.fail(`no variable ${name}`);
    assert.deepEqual(await valuesOf(query("pool")), ["all", "finalize"]);
    assert.deepEqual(await valuesOf(query("instance")), [`127.0.0.1:${server.port}`, childInstance].sort());
    assert.deepEqual(await valuesOf(query("instance"), { ...all, pool: ["finalize"] }), [childInstance]);
    assert.deepEqual(await valuesOf(query("run")), ["board-review", "board-run"]);

    // Only the finalize worker: memory, CPU and build info are its own; a pool no process runs empties every process query.
    const memory = targets.find((t) => t.panel === "Resident memory per process") ?? assert.fail("no memory panel");
    const finalize = await instant(substitute(memory.expr, { ...all, pool: ["finalize"] }));
    assert.deepEqual(
      finalize.map((s) => [s.metric.pool, s.metric.instance, s.metric.job]),
      [["finalize", childInstance, "another-name"]],
    );
    const both = await instant(substitute(memory.expr, { ...all, pool: ["all", "finalize"] }));
    assert.equal(both.length, 2);
    const processQueries = targets.filter((t) => t.expr.includes("$pool"));
    assert.equal(processQueries.length, targets.filter((t) => !/maskfleet_run_images/.test(t.expr)).length, "every query but the run panels' filters by pool");
    for (const vars of [
      { ...all, pool: ["no-such-pool"] },
      { ...all, instance: ["127.0.0.1:1"] },
    ] as Vars[]) {
      for (const t of processQueries) assert.deepEqual(await instant(substitute(t.expr, vars)), [], `${t.panel} with ${JSON.stringify(vars)}`);
    }
    const runQueries = targets.filter((t) => t.expr.includes("$run"));
    assert.ok(runQueries.length >= 2);
    for (const t of runQueries) {
      const series = await instant(substitute(t.expr, { ...all, run: ["board-review"] }));
      assert.deepEqual([...new Set(series.map((s) => s.metric.run))], ["board-review"], t.panel);
    }
  });

  it("the check can fail: a misspelt metric has no series, a broken query is refused", async () => {
    assert.match((await problemOf(`sum by (stage) (rate(maskfleet_jobs_complete_total{pool=~"$pool"}[$__rate_interval]))`)) ?? "", /^no series/);
    assert.match((await problemOf("sum by (stage) (rate(maskfleet_jobs_completed_total[$__rate_interval])")) ?? "", /parse error/);
    assert.match((await problemOf("rate(maskfleet_jobs_completed_total[$pool])")) ?? "", /bad_data|parse error/);
  });
});
