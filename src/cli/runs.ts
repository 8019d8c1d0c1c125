/**
 * `maskfleet status | report | retry | clean`: a run's progress, its report, its failed images run
 * again, its Redis state removed. They read the run's compact state: light imports only (see
 * main.ts); what only one of them needs is loaded when it runs.
 */
import { writeFile } from "node:fs/promises";
import { InvalidArgumentError, Option, type Command } from "commander";
import type { Redis } from "ioredis";
import { AdminError, cleanRun, formatClean, parseStage, reasonMatcher } from "../runs/admin.js";
import { formatReport, runReport } from "../runs/report.js";
import { formatStatus, runStatus, waitForRun } from "../runs/status.js";
import type { MetricsServer } from "../runtime/metrics.js";
import { stages, type Stage } from "../pipeline/queues.js";
import { assertRedisReachable, closeConnection, connect, useRedisCa } from "../runtime/redis.js";
import { checkRunId } from "../pipeline/run-id.js";
import { RunState } from "../runs/run-state.js";
import { serveMetrics } from "./serve-metrics.js";
import { exitCodeOfRun } from "./exit.js";

/** A port for --metrics-port or --port: 0-65535 (0: any free one). */
export function portNumber(value: string): number {
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a whole number 0-65535, got ${value}`);
  return n;
}

export interface RedisFlags {
  redis?: string;
  redisCa?: string;
}

// No default shown: the variable may hold a password.
export const redisFlag = () => new Option("--redis <url>", "Redis URL (default redis://127.0.0.1:6379; also MASKFLEET_REDIS_URL)").env("MASKFLEET_REDIS");
export const redisCaFlag = () => new Option("--redis-ca <file>", "CA bundle (PEM) for a rediss:// Redis").env("MASKFLEET_REDIS_CA");

/** The Redis URL of these flags (or the environment's), with its CA bundle registered. */
export function redisUrlOf(flags: RedisFlags): string {
  const url = flags.redis ?? process.env.MASKFLEET_REDIS_URL ?? "redis://127.0.0.1:6379";
  useRedisCa(url, flags.redisCa ?? process.env.MASKFLEET_REDIS_CA);
  return url;
}

/**
 * Runs `fn` on a Redis connection for run `runId` (checked first: one line and exit 2); an
 * AdminError (no such run, run busy) is one line and exit code 1.
 */
async function withRedis(runId: string, flags: RedisFlags, fn: (redis: Redis) => Promise<void>): Promise<void> {
  checkRunId(runId);
  const url = redisUrlOf(flags);
  await assertRedisReachable(url);
  const redis = connect(url);
  try {
    await fn(redis);
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    process.stderr.write(`maskfleet: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await closeConnection(redis);
  }
}

export function addRunCommands(program: Command): void {
  program
    .command("status")
    .description("a run's progress: counts per stage, images/min, ETA, failures (no run: list runs)")
    .argument("[run]", "run id")
    .option("--wait", "follow until the run finishes; exit 3 when images failed or wait for review")
    .option("--json", "machine-readable output")
    .addOption(redisFlag())
    .addOption(redisCaFlag())
    .addOption(
      new Option("--metrics-port <n>", "with --wait: Prometheus metrics port (0 = any free port; default 9464, or any free one when taken)")
        .env("MASKFLEET_METRICS_PORT")
        .argParser(portNumber),
    )
    .addOption(new Option("--metrics-host <host>", "with --wait: address the metrics endpoint listens on (default 0.0.0.0, all interfaces)").env("MASKFLEET_METRICS_HOST"))
    .action(async (runId: string | undefined, flags: RedisFlags & { wait?: boolean; json?: boolean; metricsPort?: number; metricsHost?: string }) => {
      if (runId !== undefined) checkRunId(runId);
      const redisUrl = redisUrlOf(flags);
      // Only a waiting status serves metrics; its port and host come from the flag or MASKFLEET_METRICS_*.
      const config =
        runId && flags.wait
          ? (await import("../config/config.js")).loadConfig({ overrides: { redisUrl, metricsPort: flags.metricsPort, metricsHost: flags.metricsHost } })
          : undefined;
      await assertRedisReachable(redisUrl);
      const redis = connect(redisUrl);
      let metrics: MetricsServer | undefined;
      try {
        if (runId && !(await new RunState(redis).runExists(runId))) {
          // One line and exit 1, as `report`, `retry` and `clean` say it.
          process.stderr.write(`maskfleet: run ${runId}: no such run\n`);
          process.exitCode = 1;
          return;
        }
        if (config) metrics = await serveMetrics(config, redis);
        if (!runId) {
          const runs = await new RunState(redis).listRuns();
          process.stdout.write(runs.length ? runs.join("\n") + "\n" : "no runs\n");
          return;
        }
        if (flags.wait) await waitForRun(redis, runId, { progress: !flags.json && process.stderr.isTTY });
        const status = await runStatus(redis, runId);
        process.stdout.write(flags.json ? JSON.stringify(status, null, 2) + "\n" : formatStatus(status) + "\n");
        if (flags.wait) process.exitCode = exitCodeOfRun(status);
      } finally {
        await metrics?.close();
        await closeConnection(redis);
      }
    });

  program
    .command("retry")
    .description("run a run's failed images again (all, one stage's, or those whose reason matches), each from the stage that failed it")
    .argument("<run>", "run id")
    .option("--stage <stage>", stages.join(" | "), parseStage)
    .option("--reason <text>", "only failures whose reason contains this (case-insensitive), or matches /regex/flags")
    .addOption(redisFlag())
    .addOption(redisCaFlag())
    .action(async (runId: string, flags: RedisFlags & { stage?: Stage; reason?: string }) => {
      reasonMatcher(flags.reason); // a bad /regex/ fails before anything is touched
      await withRedis(runId, flags, async (redis) => {
        const { formatRetry, retryRun } = await import("../runs/retry.js");
        const summary = await retryRun(redis, runId, { stage: flags.stage, reason: flags.reason });
        process.stdout.write(formatRetry(summary) + "\n");
      });
    });

  program
    .command("report")
    .description("a run's report as JSON (counts, failures by cause, stage durations, images/min, generator calls and throttles)")
    .argument("<run>", "run id")
    .option("--out <file>", "write the JSON here and print a summary (default: JSON on stdout, summary on stderr)")
    .addOption(redisFlag())
    .addOption(redisCaFlag())
    .action(async (runId: string, flags: RedisFlags & { out?: string }) => {
      await withRedis(runId, flags, async (redis) => {
        const report = await runReport(redis, runId);
        const json = JSON.stringify(report, null, 2) + "\n";
        if (flags.out) {
          await writeFile(flags.out, json);
          process.stdout.write(`${formatReport(report)}\nreport written to ${flags.out}\n`);
        } else {
          process.stdout.write(json);
          process.stderr.write(formatReport(report) + "\n");
        }
      });
    });

  program
    .command("clean")
    .description("remove a run's jobs and state from Redis; outputs are never touched")
    .argument("<run>", "run id")
    .option("--force", "clean even while jobs of the run are running (those are left to finish)")
    .addOption(redisFlag())
    .addOption(redisCaFlag())
    .action(async (runId: string, flags: RedisFlags & { force?: boolean }) => {
      await withRedis(runId, flags, async (redis) => {
        process.stdout.write(formatClean(await cleanRun(redis, runId, { force: flags.force })) + "\n");
      });
    });
}
