/** How the command line ends on an error: one line for the errors people cause, exit 2 for bad input. */
import { ConfigError, FatalServiceError, ModelError } from "../shared/errors.js";
import { RedisUnusableError } from "../shared/redis.js";

export function exitOnError(err: unknown): never {
  const known = err instanceof ConfigError || err instanceof ModelError || err instanceof FatalServiceError || err instanceof RedisUnusableError;
  process.stderr.write(`maskfleet: ${err instanceof Error ? (known ? err.message : err.stack) : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
