/**
 * Errors a user can act on. InputError marks a problem with one image (corrupt file, object not
 * found, ...): that image fails with the message as its reason, never the worker, and retrying
 * will not help. ConfigError names the bad key.
 */
export class InputError extends Error {
  override readonly name = "InputError";
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly key: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${key}: ${message}`, options);
  }
}

/** A model file is missing or fails its checksum; the message says how to get it. */
export class ModelError extends Error {
  override readonly name = "ModelError";
}

/**
 * A remote service asked us to slow down (throttling, model not ready). The queue pauses for
 * `retryAfterMs` and the job goes back to waiting without spending an attempt.
 */
export class ThrottledError extends Error {
  override readonly name = "ThrottledError";
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A remote service refused this one request for good (content filter, validation): recorded, never retried. */
export class RejectedError extends Error {
  override readonly name = "RejectedError";
}

/** A remote service will refuse every request (access denied, model not found): the pool stops with this message. */
export class FatalServiceError extends Error {
  override readonly name = "FatalServiceError";
}

/** The short class of a failure, for metrics labels: never the message, which names files and ids. */
export type FailureClass = "input" | "rejected" | "config" | "model" | "throttled" | "fatal" | "transient";

export function failureClass(err: unknown): FailureClass {
  if (err instanceof InputError) return "input";
  if (err instanceof RejectedError) return "rejected";
  if (err instanceof ConfigError) return "config";
  if (err instanceof ModelError) return "model";
  if (err instanceof ThrottledError) return "throttled";
  if (err instanceof FatalServiceError) return "fatal";
  // Timeouts, 5xx, I/O, anything unexpected: what the pool retries with backoff.
  return "transient";
}
