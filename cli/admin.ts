/** `maskfleet retry | report | clean`: a run's failed jobs re-queued, its report, its Redis state removed. */
import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import type { Redis } from "ioredis";
import { AdminError, cleanRun, formatClean, formatRetry, parseStage, reasonMatcher, retryRun } from "../producer/admin.js";
import { formatReport, runReport } from "../producer/report.js";
import { stages, type Stage } from "../shared/queues.js";
import { assertRedisReachable, connect, useRedisCa } from "../shared/redis.js";
import { checkRunId } from "../shared/run-id.js";

interface RedisFlags {
  redis?: string;
  redisCa?: string;
}

/**
 * Runs `fn` on a Redis connection for run `runId` (checked first: one line and exit 2); an
 * AdminError (no such run, run busy) is one line and exit code 1.
 */
async function withRedis(runId: string, flags: RedisFlags, fn: (redis: Redis) => Promise<void>): Promise<void> {
  checkRunId(runId);
  const url = flags.redis ?? process.env.MASKFLEET_REDIS_URL ?? "redis://127.0.0.1:6379";
  useRedisCa(url, flags.redisCa ?? process.env.MASKFLEET_REDIS_CA);
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
  // No default shown: MASKFLEET_REDIS_URL may hold a password.
  const redisFlag = ["--redis <url>", "Redis URL (default: MASKFLEET_REDIS_URL, else redis://127.0.0.1:6379)"] as const;
  const redisCaFlag = ["--redis-ca <file>", "CA bundle (PEM) for a rediss:// Redis (default: MASKFLEET_REDIS_CA)"] as const;

  program
    .command("retry")
    .description("re-queue a run's failed jobs (all, one stage's, or those whose reason matches); the images count as in progress again")
    .argument("<run>", "run id")
    .option("--stage <stage>", stages.join(" | "), parseStage)
    .option("--reason <text>", "only failures whose reason contains this (case-insensitive), or matches /regex/flags")
    .option(...redisFlag)
    .option(...redisCaFlag)
    .action(async (runId: string, flags: RedisFlags & { stage?: Stage; reason?: string }) => {
      reasonMatcher(flags.reason); // a bad /regex/ fails before anything is touched
      await withRedis(runId, flags, async (redis) => {
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
    .option(...redisCaFlag)
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
    .description("remove a run's jobs (every queue, every state) and run state from Redis; outputs are never touched")
    .argument("<run>", "run id")
    .option("--force", "clean even while jobs of the run are running (those are left to finish)")
    .option(...redisFlag)
    .option(...redisCaFlag)
    .action(async (runId: string, flags: RedisFlags & { force?: boolean }) => {
      await withRedis(runId, flags, async (redis) => {
        process.stdout.write(formatClean(await cleanRun(redis, runId, { force: flags.force })) + "\n");
      });
    });
}
