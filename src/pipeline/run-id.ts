/**
 * What a run id may be: 1-128 letters, digits, ".", "_" and "-", not starting with "-" or ".".
 * A run id is part of Redis keys (`maskfleet:run:<run>:images`, see run-state.ts) and of a
 * BullMQ prefix, so a ":" would reach another run's keys (`foo:images` is run foo's image set).
 * Checked here only: by the CLI where a user gives one, and by RunState and enqueueImages as a
 * last guard.
 */
import { ConfigError } from "../runtime/errors.js";

const runIdPattern = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function isValidRunId(runId: string): boolean {
  return runIdPattern.test(runId);
}

/** The run id itself, or a ConfigError ("run: ..."; the CLI's one line and exit 2). */
export function checkRunId(runId: string): string {
  if (isValidRunId(runId)) return runId;
  const shown = JSON.stringify(runId.length > 60 ? `${runId.slice(0, 60)}...` : runId);
  throw new ConfigError("run", `${shown} is not a valid run id: use 1-128 letters, digits, ".", "_" or "-", not starting with "-" or "."`);
}
