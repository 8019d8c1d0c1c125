/** The whole command line: run, enqueue, worker, models, eval, and the run commands (src/cli/runs.ts). */
import { Argument, Command, InvalidArgumentError } from "commander";
import type { Redis } from "ioredis";
import { checkBedrockLifecycle, checkModels, checkRunnable, enqueueInputs, needsAws, newRunId, type EnqueueSummary } from "../producer/enqueue.js";
import { formatFollowed, formatSkipped, type FollowedLink, type SkippedInput } from "../producer/discover.js";
import { formatStatus, runStatus, waitForRun } from "../runs/status.js";
import { assertAwsCredentials } from "../runtime/aws.js";
import { awsSettingsOf, type Config } from "../config/config.js";
import { ConfigError } from "../runtime/errors.js";
import { startMetricsServer, type MetricsServer } from "../runtime/metrics.js";
import { privateQueuePrefix, stages, type Stage } from "../pipeline/queues.js";
import { assertRedisReachable, closeConnection, connect, useRedisCa } from "../runtime/redis.js";
import { RunState } from "../runs/run-state.js";
import { checkRunId } from "../pipeline/run-id.js";
import { maskfleetVersion } from "../runtime/version.js";
import { startFleet } from "../fleet/fleet.js";
import { addConfigFlags, configFromFlags, ignoredByWorker, type ConfigFlags } from "./options.js";
import { addModelsCommand } from "./models.js";
import { addRunCommands } from "./runs.js";
import { exitCodeOfRun, exitOnError, usageExits } from "./exit.js";
import { warnUnknownEnv } from "./env.js";
import { addCompletionCommand } from "./completion.js";
import { addUiCommand } from "./ui.js";
import { serveMetrics } from "./serve-metrics.js";
import { addEvalCommand } from "./eval.js";

/** Config, inputs and services checked before any work: bad values, missing credentials, no Redis. */
async function preflight(flags: ConfigFlags, inputs: readonly string[], models: "here" | "workers"): Promise<Config> {
  const config = configFromFlags(flags);
  useRedisCa(config.redisUrl, config.redisCa);
  for (const line of config.warnings) warn(`maskfleet: ${line}`);
  await checkRunnable(config);
  await checkModels(config, models, (line) => void process.stderr.write(`${line}\n`));
  if (needsAws(config, inputs)) await assertAwsCredentials(awsSettingsOf(config));
  await checkBedrockLifecycle(config, warn);
  await assertRedisReachable(config.redisUrl);
  return config;
}

const warn = (line: string) => void process.stderr.write(`${line}\n`);

/**
 * Streams the inputs into the run (src/producer/enqueue.ts), then says on stderr what discovery left
 * out (and why) and which symlinked folders it followed, and when the window is full.
 */
async function enqueueAll(
  redis: Redis,
  config: Config,
  runId: string,
  inputs: readonly string[],
  opts: { window: number; queuePrefix?: string; onProgress?: () => void },
): Promise<EnqueueSummary> {
  const skipped: SkippedInput[] = [];
  const followed: FollowedLink[] = [];
  let skippedCount = 0;
  const summary = await enqueueInputs(redis, config, runId, inputs, {
    ...opts,
    onSkipped: (s) => void (skippedCount++ < 1000 && skipped.push(s)),
    onFollowed: (f) => void followed.push(f),
    onWindowFull: (unfinished) => warn(`window full: ${unfinished} images of run ${runId} unfinished; adding more as they finish (--window ${opts.window})`),
  });
  const more = skippedCount > skipped.length ? ` and ${skippedCount - skipped.length} more` : "";
  for (const line of [formatSkipped(skipped) && `${formatSkipped(skipped)}${more}`, formatFollowed(followed)]) if (line) warn(line);
  return summary;
}

/** `run --run ID` resumes its own run; a run enqueued for the worker pools is theirs. */
async function assertOwnRun(redisUrl: string, runId: string, queuePrefix: string): Promise<void> {
  const redis = connect(redisUrl);
  try {
    const state = new RunState(redis);
    if ((await state.runExists(runId)) && (await state.queuePrefixOf(runId)) !== queuePrefix) {
      throw new ConfigError("run", `run ${runId} was enqueued for the worker pools: follow it with \`maskfleet status ${runId} --wait\`, or give \`run\` a new run id`);
    }
  } finally {
    redis.disconnect();
  }
}

const program = usageExits(
  new Command("maskfleet")
    .description("Bulk automatic masks and background replacement on a Redis/BullMQ worker fleet")
    .version(maskfleetVersion(), "-V, --version", "print maskfleet's version"),
).hook("preAction", () => warnUnknownEnv(warn));

const windowHelp = "most unfinished images of the run in Redis at once; more are added as images finish";

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number >= 1, got ${v}`);
  return n;
};

addConfigFlags(
  program
    .command("run")
    .description("enqueue images and process them with all four pools in this process; exits when done")
    .argument("<inputs...>", "image files, folders, globs, or a .csv/.jsonl manifest")
    .option("-r, --run <id>", "run id (default: a new one)")
    .option("--concurrency <n>", "jobs at once per pool (default: the config's per-stage values)", positiveInt)
    .option("--window <n>", windowHelp, positiveInt, 10_000)
    .option("--no-progress", "no progress bar"),
).action(async (inputs: string[], flags: ConfigFlags & { run?: string; progress: boolean; concurrency?: number; window: number }) => {
  if (flags.run !== undefined) checkRunId(flags.run);
  const config = await preflight(flags, inputs, "here");
  const runId = flags.run ?? newRunId();
  // `run` works on its run's own queues only: other runs' jobs (their settings, credentials and output folders) are never its.
  const queuePrefix = privateQueuePrefix(runId);
  await assertOwnRun(config.redisUrl, runId, queuePrefix);
  const metrics = await serveMetrics(config); // queue depths: the fleet's context reports them
  const fleet = startFleet(config, stages, flags.concurrency, queuePrefix);
  const stop = () => void fleet.close().then(() => process.exit(130));
  process.once("SIGINT", stop).once("SIGTERM", stop);
  try {
    const started = Date.now();
    // The fleet works while the producer adds inputs: it adds more as images finish (--window).
    let firstBatchIn: () => void = () => undefined;
    const firstBatch = new Promise<void>((resolve) => (firstBatchIn = resolve));
    const enqueued = enqueueAll(fleet.ctx.redis, config, runId, inputs, { window: flags.window, queuePrefix, onProgress: () => firstBatchIn() }).then((summary) => {
      process.stderr.write(`run ${runId}: ${summary.images} images (${summary.added} new, ${summary.alreadyKnown} already known), output in ${config.out}\n`);
    });
    // Watched once the run exists: its first batch is in (or the producer ended).
    const watched = Promise.race([firstBatch, enqueued]).then(() => waitForRun(fleet.ctx.redis, runId, { progress: flags.progress && process.stderr.isTTY }));
    await Promise.race([Promise.all([enqueued, watched]), fleet.fatal]);
    const status = await runStatus(fleet.ctx.redis, runId);
    process.stdout.write(formatStatus(status) + "\n");
    process.stderr.write(`finished in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    process.exitCode = exitCodeOfRun(status);
  } finally {
    await fleet.close();
    await metrics.close();
  }
});

addConfigFlags(
  program
    .command("enqueue")
    .description("producer only: enqueue images as a run for the worker pools")
    .argument("<inputs...>", "image files, folders, globs, or a .csv/.jsonl manifest")
    .option("-r, --run <id>", "run id (default: a new one); an interrupted enqueue of the same inputs resumes where it stopped")
    .option("--window <n>", windowHelp, positiveInt, 10_000)
    .option("--wait", "wait for the run to finish, with progress; exit 3 when images failed or wait for review"),
).action(async (inputs: string[], flags: ConfigFlags & { run?: string; wait?: boolean; window: number }) => {
  if (flags.run !== undefined) checkRunId(flags.run);
  const config = await preflight(flags, inputs, "workers");
  const redis = connect(config.redisUrl);
  let metrics: MetricsServer | undefined;
  try {
    if (flags.wait) metrics = await serveMetrics(config, redis);
    const runId = flags.run ?? newRunId();
    // The run id as soon as its first images are in: a producer stopped while it waits for room in the window resumes with it.
    let shown = false;
    const showRunId = () => void (shown || ((shown = true), process.stdout.write(`${runId}\n`)));
    const summary = await enqueueAll(redis, config, runId, inputs, { window: flags.window, onProgress: showRunId });
    showRunId();
    process.stderr.write(`enqueued ${summary.added} new images (${summary.alreadyKnown} already known) as run ${runId}\n`);
    if (flags.wait) {
      // Waiting is only watching: the run goes on without us, and `status --wait` re-attaches.
      process.once("SIGINT", () => {
        process.stderr.write(`\ndetached from run ${runId}; it goes on. Re-attach: maskfleet status ${runId} --wait\n`);
        process.exit(130);
      });
      const status = await waitForRun(redis, runId, { progress: process.stderr.isTTY });
      process.stdout.write(formatStatus(status) + "\n");
      process.exitCode = exitCodeOfRun(status);
    }
  } finally {
    await metrics?.close();
    await closeConnection(redis);
  }
});

addConfigFlags(
  program
    .command("worker")
    .description("run one pool in this process until SIGTERM/SIGINT; the jobs carry what to do with each image (target, models, generator, prompts, output)")
    .addArgument(new Argument("<stage>", "the pool").choices(stages))
    .option("--concurrency <n>", "jobs at once", positiveInt),
  { worker: true },
).action(async (stage: string, flags: ConfigFlags & { concurrency?: number }, cmd: Command) => {
  const ignored = ignoredByWorker(cmd);
  if (ignored.length)
    warn(
      `maskfleet: warning: a worker ignores ${ignored.join(", ")}: jobs carry ${ignored.length === 1 ? "it" : "them"} (give ${ignored.length === 1 ? "it" : "them"} to \`enqueue\`)`,
    );
  const config = configFromFlags(flags, {}, { worker: true });
  useRedisCa(config.redisUrl, config.redisCa);
  if (needsAws(config, [])) await assertAwsCredentials(awsSettingsOf(config));
  // A generate worker checks the models its own config names; jobs naming others are checked when their generator opens.
  if (stage === "generate") await checkBedrockLifecycle(config, warn);
  await assertRedisReachable(config.redisUrl);
  const metrics = await startMetricsServer(config.metricsPort, config.metricsHost);
  const fleet = startFleet(config, [stage as Stage], flags.concurrency);
  process.stderr.write(`${stage} worker ${process.pid} started (concurrency ${flags.concurrency ?? config.concurrency[stage as Stage]}), metrics on ${metrics.shown}\n`);
  try {
    await Promise.race([
      new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.stderr.write(`${signal}: finishing in-flight jobs\n`);
          resolve();
        };
        process.once("SIGINT", stop).once("SIGTERM", stop);
      }),
      fleet.fatal,
    ]);
  } finally {
    // Redis lost while closing (a socket broken under load) leaves nothing to do: the jobs still in
    // flight go back to the queue when their locks lapse.
    await fleet.close().catch((err: Error) => warn(`maskfleet: shutdown: ${err.message.split("\n")[0]} (jobs in flight go back to the queue when their locks lapse)`));
    await metrics.close();
  }
  // Jobs handed back after the grace period may still hold native work (an ONNX run): do not wait for it.
  process.exit(0);
});

addModelsCommand(program);
addRunCommands(program);
addEvalCommand(program);
addUiCommand(program);
addCompletionCommand(program);

program.parseAsync(process.argv).catch(exitOnError);
