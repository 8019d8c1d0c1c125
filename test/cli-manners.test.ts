/**
 * The command line's manners, as a user meets them in child processes: exit codes (2 for usage and
 * config errors, 3 for a waited-on run with failures), one-line errors, a worker's honest --help,
 * environment variables named after the flags, ./maskfleet.yaml, the unknown-variable warning,
 * readable logs in a terminal, and no Redis noise when Redis goes away.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig, resolveConfig } from "../src/config/config.js";
import { stages } from "../src/pipeline/queues.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { cliEntry, freshRedis, repoRoot, runMaskfleet, scratchDir, tinyModels, until } from "./helpers.js";
import { startRedisServer } from "./scenarios/redis-server.js";

const cli = cliEntry();

/** No stack frame and no ioredis/BullMQ dump in what a user reads. */
function assertNoNoise(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, "a stack trace");
  assert.doesNotMatch(stderr, /Unhandled error event|\{\s*$|errno:/m, "a Redis error dump");
}

describe("exit codes and one-line errors", () => {
  it("usage errors exit 2 with one line naming what was wrong; help and version exit 0", async () => {
    const cases: [string[], RegExp][] = [
      [["bogus"], /^maskfleet: unknown command 'bogus'$/],
      [["run"], /^maskfleet: missing required argument 'inputs'$/],
      [["run", "x.jpg", "--min-confidence", "abc"], /^maskfleet: option '--min-confidence <n>' argument 'abc' is invalid\. expected a number 0-1, got abc$/],
      [["enqueue", "x.jpg", "--attempts", "0"], /argument '0' is invalid\. expected a whole number 1-100, got 0$/],
      [["run", "x.jpg", "--ep", "gpu"], /argument 'gpu' is invalid\. Allowed choices are cpu, cuda\.$/],
      [["worker", "paint"], /value 'paint' is invalid for argument 'stage'\. Allowed choices are detect, mask, generate, finalize\.$/],
      [["status", "--nope"], /^maskfleet: unknown option '--nope'$/],
    ];
    for (const [args, message] of cases) {
      const r = await runMaskfleet(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.match(lines[0] as string, message, args.join(" "));
      assert.deepEqual(lines.slice(1), ["(add --help for usage)"], args.join(" "));
    }
    for (const args of [["--help"], ["worker", "--help"], ["--version"]]) assert.equal((await runMaskfleet(args)).code, 0, args.join(" "));
  });

  it("a config error exits 2 with one line naming the key; a bad MASKFLEET_ value names its variable", async () => {
    const dir = await scratchDir("manners-config");
    await writeFile(join(dir, "bad.yaml"), "minConfidence: 7\n");
    const r = await runMaskfleet(["run", "x.jpg", "-c", "bad.yaml"], { cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^maskfleet: minConfidence: /);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
    const env = await runMaskfleet(["run", "x.jpg"], { cwd: dir, env: { MASKFLEET_EP: "gpu" } });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /value 'gpu' from env 'MASKFLEET_EP' is invalid\. Allowed choices are cpu, cuda\./);
  });

  it("status of a run that does not exist, and of an unreachable Redis: one line, exit 1", async () => {
    const redis = await freshRedis(11);
    const missing = await runMaskfleet(["status", "nosuchrun", "--redis", redis]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "maskfleet: run nosuchrun: no such run\n");
    const down = await runMaskfleet(["status", "nosuchrun", "--redis", "redis://127.0.0.1:6399"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^maskfleet: cannot reach Redis at redis:\/\/127\.0\.0\.1:6399: connect ECONNREFUSED[^\n]*\n$/);
  });
});

describe("waiting on a run: exit 3 when images failed", () => {
  let fleet: Fleet;
  let redis: string;
  let dir: string;
  let models: { sam: string };

  before(async () => {
    redis = await freshRedis(12);
    models = await tinyModels();
    dir = await scratchDir("manners-wait");
    await scratchDir("manners-wait/photos");
    await copyFile(join(repoRoot, "samples/photos/coffee.jpg"), join(dir, "photos/coffee.jpg"));
    await writeFile(join(dir, "photos/broken.jpg"), Buffer.from("not a jpeg at all"));
    fleet = startFleet(resolveConfig({ redisUrl: redis, target: "auto", samModel: models.sam, out: join(dir, "out"), attempts: 1 }), stages);
  });

  after(async () => {
    await fleet?.close();
  });

  it("enqueue --wait and status --wait exit 3 when an image failed; a plain status exits 0", async () => {
    const args = ["--target", "auto", "--sam-model", models.sam, "--redis", redis, "-o", "out", "--attempts", "1", "--run", "with-failure"];
    const enqueued = await runMaskfleet(["enqueue", "photos", "--wait", ...args], { cwd: dir });
    assert.equal(enqueued.code, 3, enqueued.stderr);
    assert.match(enqueued.stdout, /1 failed/);
    const waited = await runMaskfleet(["status", "with-failure", "--wait", "--json", "--redis", redis], { cwd: dir });
    assert.equal(waited.code, 3);
    assert.deepEqual([JSON.parse(waited.stdout).succeeded, JSON.parse(waited.stdout).failed], [1, 1]);
    assert.equal((await runMaskfleet(["status", "with-failure", "--redis", redis])).code, 0);
  });

  it("a run with nothing failed: enqueue --wait exits 0", async () => {
    const args = ["--target", "auto", "--sam-model", models.sam, "--redis", redis, "-o", "out", "--run", "all-good"];
    const r = await runMaskfleet(["enqueue", "photos/coffee.jpg", "--wait", ...args], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
  });
});

describe("Redis going away while a command waits", () => {
  it("one warning line, no stack and no BullMQ or ioredis dump", async () => {
    const server = await startRedisServer("manners-redis-away", { persistence: false });
    const dir = await scratchDir("manners-redis-away-in");
    await copyFile(join(repoRoot, "samples/photos/coffee.jpg"), join(dir, "coffee.jpg"));
    const child = spawn(process.execPath, [cli, "enqueue", "coffee.jpg", "--wait", "--target", "auto", "--redis", server.url], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await until("the image is enqueued", () => /enqueued 1 new images/.test(stderr), 30_000);
      await server.stop();
      await new Promise((r) => setTimeout(r, 4000)); // several reconnect attempts and status polls
    } finally {
      child.kill("SIGINT");
      await new Promise((resolve) => child.once("exit", resolve));
      await server.close();
    }
    assertNoNoise(stderr);
    // Each distinct error once (the connection may first see its socket break: EPIPE or ECONNRESET),
    // however many reconnects and polls there were.
    const errors = stderr
      .split("\n")
      .filter((l) => /Redis connection error/.test(l))
      .map((l) => JSON.parse(l).err as string);
    assert.equal(new Set(errors).size, errors.length, stderr);
    assert.ok(errors.length <= 3, stderr);
    assert.equal(errors.at(-1), `connect ECONNREFUSED 127.0.0.1:${server.port}`);
  });
});

describe("a worker's flags", () => {
  it("--help shows what a worker reads, not what jobs carry", async () => {
    const help = (await runMaskfleet(["worker", "--help"])).stdout;
    for (const flag of [
      "--concurrency",
      "--ep",
      "--threads",
      "--cache",
      "--redis",
      "--rate",
      "--metrics-port",
      "--sam-model",
      "--refine-mask",
      "--mask-selection",
      "--generator",
      "--model",
      "--detector",
      "--out",
    ])
      assert.match(help, new RegExp(`^  (-\\w, )?${flag} `, "m"), flag);
    for (const flag of ["--target", "--prompts", "--seeds", "--grow", "--background", "--min-confidence", "--negative-prompt", "--max-results-per-image"])
      assert.doesNotMatch(help, new RegExp(`${flag}\\b`), flag);
    const shown = help.split("\n").filter((l) => /^ {2}-/.test(l)).length;
    assert.ok(shown <= 28, `${shown} flags shown`);
    // `enqueue` still shows every one of them.
    const enqueue = (await runMaskfleet(["enqueue", "--help"])).stdout;
    for (const flag of ["--target", "--prompts", "--seeds", "--out", "--generator"]) assert.match(enqueue, new RegExp(` ${flag}\\b`), flag);
  });

  it("a job flag given to a worker is warned about as ignored; the worker runs", async () => {
    const redis = await freshRedis(13);
    const child = spawn(process.execPath, [cli, "worker", "finalize", "--redis", redis, "--target", "Car", "--seeds", "1-2", "--ep", "cpu"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await until("the worker starts", () => /finalize worker \d+ started/.test(stderr), 30_000);
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once("exit", resolve))), 0, stderr);
    const warning = stderr.split("\n").filter((l) => /ignores/.test(l));
    assert.deepEqual(warning, ["maskfleet: warning: a worker ignores --target, --seeds: jobs carry them (give them to `enqueue`)"]);
  });
});

describe("environment variables", () => {
  it("each value flag reads MASKFLEET_<FLAG>, and --help names it", async () => {
    const help = (await runMaskfleet(["run", "--help"])).stdout.replace(/\s+/g, " ");
    for (const name of ["MASKFLEET_EP", "MASKFLEET_CONFIG", "MASKFLEET_GROW", "MASKFLEET_SAM_MODEL", "MASKFLEET_REDIS", "MASKFLEET_CACHE", "MASKFLEET_PROMPTS"])
      assert.ok(help.includes(`env: ${name}`), name);
  });

  it("MASKFLEET_CONFIG, then ./maskfleet.yaml, is the config file; a flag's variable beats the file", async () => {
    const dir = await scratchDir("manners-config-file");
    await writeFile(join(dir, "maskfleet.yaml"), "growPx: 9999\n");
    await writeFile(join(dir, "other.yaml"), "featherPx: 9999\n");
    // Both files hold a value out of range: the error names which one was read.
    const found = await runMaskfleet(["run", "x.jpg"], { cwd: dir });
    assert.equal(found.code, 2);
    assert.match(found.stderr, /^maskfleet: growPx: /);
    const named = await runMaskfleet(["run", "x.jpg"], { cwd: dir, env: { MASKFLEET_CONFIG: "other.yaml" } });
    assert.match(named.stderr, /^maskfleet: featherPx: /);
    // MASKFLEET_FEATHER (the flag's) replaces the file's bad featherPx: the next check is Redis (a closed port).
    const flagged = await runMaskfleet(["run", "x.jpg", "--redis", "redis://127.0.0.1:6399"], { cwd: dir, env: { MASKFLEET_CONFIG: "other.yaml", MASKFLEET_FEATHER: "3" } });
    assert.equal(flagged.code, 1, flagged.stderr);
    assert.match(flagged.stderr, /^maskfleet: cannot reach Redis at redis:\/\/127\.0\.0\.1:6399/m);
    assert.doesNotMatch(flagged.stderr, /featherPx/);
    const bad = await runMaskfleet(["run", "x.jpg"], { cwd: dir, env: { MASKFLEET_CONFIG: "other.yaml", MASKFLEET_FEATHER: "-1" } });
    assert.match(bad.stderr, /value '-1' from env 'MASKFLEET_FEATHER' is invalid\. expected a number 0-256, got -1/);
  });

  it("an empty variable is unset; a key's variable keeps its JSON and range forms", async () => {
    // Each of these once stopped a worker with exit 2; all get as far as Redis (a closed port: exit 1).
    const envs: NodeJS.ProcessEnv[] = [
      { MASKFLEET_SAM_MODEL: "", MASKFLEET_THREADS: "", MASKFLEET_METRICS_PORT: "" },
      { MASKFLEET_RATE: "60" },
      { MASKFLEET_SEEDS: "[1,2]" },
      { MASKFLEET_SEEDS: "3-5" },
    ];
    for (const env of envs) {
      const r = await runMaskfleet(["run", "x.jpg", "--redis", "redis://127.0.0.1:6399"], { env });
      assert.equal(r.code, 1, `${JSON.stringify(env)}: ${r.stderr}`);
      assert.match(r.stderr, /cannot reach Redis/, JSON.stringify(env));
    }
  });

  it("lists take one item per line or comma-separated; the model cache has one variable", () => {
    assert.deepEqual(loadConfig({ env: { MASKFLEET_PROMPTS: "a beach, at dusk\na forest\n" } }).prompts, ["a beach, at dusk", "a forest"]);
    assert.deepEqual(loadConfig({ env: { MASKFLEET_PROMPTS: "a beach, a forest" } }).prompts, ["a beach", "a forest"]);
    assert.deepEqual(loadConfig({ env: { MASKFLEET_PROMPTS: '["a, b"]' } }).prompts, ["a, b"]);
    assert.equal(loadConfig({ env: { MASKFLEET_CACHE: "/models" } }).cacheDir, "/models");
    assert.equal(loadConfig({ env: { MASKFLEET_CACHE_DIR: "/models" } }).cacheDir, undefined);
  });

  it("an unknown MASKFLEET_ variable gets one warning line; known ones none", async () => {
    const r = await runMaskfleet(["status", "--redis", "redis://127.0.0.1:6399"], {
      env: {
        MASKFLEET_SAM_MODLE: "x",
        MASKFLEET_CACHE_DIR: "/m",
        MASKFLEET_EP: "cpu",
        MASKFLEET_REDIS_URL: "redis://127.0.0.1:6399",
        MASKFLEET_UI_PORT: "3001",
        MASKFLEET_MODEL_CHECK: "verify",
      },
    });
    const warnings = r.stderr.split("\n").filter((l) => /warning/.test(l));
    assert.deepEqual(
      warnings.map((l) => /(MASKFLEET_\w+)/.exec(l)?.[1]),
      ["MASKFLEET_CACHE_DIR", "MASKFLEET_SAM_MODLE"],
    );
    assert.match(warnings[0] as string, /MASKFLEET_CACHE_DIR is not read any more \(ignored\): set MASKFLEET_CACHE instead/);
  });

  it("the unknown-variable check's list is exactly the config flags' and keys' variables", async () => {
    const [{ configVariableNames }, { configFlagEnvNames }, { configEnvNames }] = await Promise.all([
      import("../src/cli/env-names.js"),
      import("../src/cli/options.js"),
      import("../src/config/config.js"),
    ]);
    assert.deepEqual([...configVariableNames].sort(), [...new Set([...configFlagEnvNames(), ...configEnvNames()])].sort());
  });

  it("every variable a command's flags read is one the unknown-variable check knows", async () => {
    const { knownEnvNames } = await import("../src/cli/env.js");
    const known = knownEnvNames();
    const help = ["run", "enqueue", "worker", "status", "retry", "report", "clean", "ui", "eval", "models pull"].map((c) => runMaskfleet([...c.split(" "), "--help"]));
    const named = new Set((await Promise.all(help)).flatMap((r) => [...r.stdout.matchAll(/env: (MASKFLEET_\w+)/g)].map((m) => m[1] as string)));
    assert.ok(named.size >= 20, `${named.size} variables`);
    assert.deepEqual(
      [...named].filter((n) => !known.has(n)),
      [],
    );
  });
});

describe("logs", () => {
  const logLine = `const { log } = await import(${JSON.stringify(join(repoRoot, "src/runtime/log.ts"))}); log.warn({ queue: "mask" }, "Redis connection error");`;

  it("JSON lines when stderr is not a terminal, readable lines in one", () => {
    const piped = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", logLine], { encoding: "utf8" });
    assert.equal(JSON.parse(piped.stderr).msg, "Redis connection error");
    // util-linux `script` gives the command a terminal.
    const tty = spawnSync("script", ["-qec", `${process.execPath} --import tsx --input-type=module -e '${logLine}'`, "/dev/null"], {
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1" },
    });
    assert.equal(tty.status, 0, tty.stderr);
    assert.match(tty.stdout, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: Redis connection error\r?\n\s+queue: "mask"/m);
    assert.doesNotMatch(tty.stdout, /"level"/);
  });
});
