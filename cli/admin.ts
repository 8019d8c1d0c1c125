/** `maskfleet retry | report | clean`: a run's failed jobs re-queued, its report, its Redis state removed. */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import type { Redis } from "ioredis";
import { AdminError, cleanRun, formatClean, formatRetry, parseStage, reasonMatcher, retryRun } from "../producer/admin.js";
import { formatReport, runReport } from "../producer/report.js";
import { assertRedisReachable, connect, stages, type Stage } from "../shared/queues.js";

/** Runs `fn` on a Redis connection; an AdminError (no such run, run busy) is one line and exit code 1. */
async function withRedis(url: string, fn: (redis: Redis) => Promise<void>): Promise<void> {
  await assertRedisReachable(url);
  const redis = connect(url);
  try {
    await fn(redis);
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    process.stderr.write(`maskfleet: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await redis.quit();
  }
}

export function addAdminCommands(program: Command): void {
  const redisFlag = ["--redis <url>", "Redis URL", process.env.MASKFLEET_REDIS_URL ?? "redis://127.0.0.1:6379"] as const;

  program
    .command("retry")
    .description("re-queue a run's failed jobs (all, one stage's, or those whose reason matches); the images count as in progress again")
    .argument("<run>", "run id")
    .option("--stage <stage>", stages.join(" | "), parseStage)
    .option("--reason <text>", "only failures whose reason contains this (case-insensitive), or matches /regex/flags")
    .option(...redisFlag)
    .action(async (runId: string, flags: { stage?: Stage; reason?: string; redis: string }) => {
      reasonMatcher(flags.reason); // a bad /regex/ fails before anything is touched
      await withRedis(flags.redis, async (redis) => {
        const summary = await retryRun(redis, runId, { stage: flags.stage, reason: flags.reason });
        process.stdout.write(formatRetry(summary) + "\n");
      });
    });

  program
    .command("report")
    .description("a run's report as JSON (counts, failures by cause, stage durations, images/min, generator calls and throttles)")
    .argument("<run>", "run id")
    .option("--out <file>", "write the JSON here and print a summary (default: JSON on stdout, summary on stderr)")
    .option(...redisFlag)
    .action(async (runId: string, flags: { out?: string; redis: string }) => {
      await withRedis(flags.redis, async (redis) => {
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
    .description("remove a run's jobs (every queue, every state) and run state from Redis; outputs are never touched")
    .argument("<run>", "run id")
    .option("--force", "clean even while jobs of the run are running (those are left to finish)")
    .option(...redisFlag)
    .action(async (runId: string, flags: { force?: boolean; redis: string }) => {
      await withRedis(flags.redis, async (redis) => {
        process.stdout.write(formatClean(await cleanRun(redis, runId, { force: flags.force })) + "\n");
      });
    });
}
