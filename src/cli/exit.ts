/** How the command line ends: one line for the errors people cause; exit 2 for bad usage and bad config. */
import type { Command } from "commander";
import { ConfigError, FatalServiceError, ModelError } from "../runtime/errors.js";
import { RedisUnusableError } from "../runtime/redis.js";

export function exitOnError(err: unknown): never {
  const known = err instanceof ConfigError || err instanceof ModelError || err instanceof FatalServiceError || err instanceof RedisUnusableError;
  process.stderr.write(`maskfleet: ${err instanceof Error ? (known ? err.message : err.stack) : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

/**
 * Commander's own exits, for this program and the commands added to it afterwards: help and
 * version 0, a usage error (unknown command or option, missing or invalid argument) 2, its message
 * followed by a pointer to --help rather than the whole help.
 */
export function usageExits(program: Command): Command {
  return program
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, "maskfleet: ")) })
    .showHelpAfterError("(add --help for usage)");
}

/** Exit status of a run that ended: 3 when images failed or wait for review, as `run` says it. */
export function exitCodeOfRun(status: { failed: number; review: number }): number {
  return status.failed > 0 || status.review > 0 ? 3 : 0;
}
