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
  ) {
    super(`${key}: ${message}`);
  }
}

/** A model file is missing or fails its checksum; the message says how to get it. */
export class ModelError extends Error {
  override readonly name = "ModelError";
}
