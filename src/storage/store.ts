/**
 * Where a run's inputs and outputs live. Keys are '/'-separated relative paths. Writes are
 * atomic: a reader sees the old object or the whole new one, never a part.
 */
export interface Store {
  /** The root as the user gave it (a folder path or a URI), for messages and manifests. */
  readonly root: string;
  read(key: string): Promise<Buffer>;
  write(key: string, body: Buffer, contentType?: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** An object's size and content tag without its body; undefined when there is none. */
  head(key: string): Promise<StoreEntry | undefined>;
  /** Every object under `prefix` ('' or ending in '/'), in key order (UTF-8 bytes), one page in memory. */
  list(prefix: string, options?: ListOptions): AsyncGenerator<StoreEntry>;
  /** A location a person or another tool can open. */
  locate(key: string): string;
}

export interface StoreEntry {
  /** The key under the store's root. */
  key: string;
  size: number;
  /** Changes whenever the content does (S3: `s3:<ETag>:<Size>`); absent where the store has none. */
  contentTag?: string;
}

export interface ListOptions {
  /** Only the keys after this one: a listing resumed where an earlier one stopped. */
  startAfter?: string;
  /** Keys asked for per request, where the store pages. */
  pageSize?: number;
}

/** Why a store could not read an object, for messages that say so in the caller's words. */
export type StoreMiss = "not found" | "permission denied" | "no such bucket";

/** A read or listing refused by the store for a reason the caller can name (StoreMiss). */
export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(
    readonly miss: StoreMiss,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export const contentTypes: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".json": "application/json",
  ".webp": "image/webp",
};

export function contentTypeOf(key: string): string {
  const dot = key.lastIndexOf(".");
  return (dot >= 0 && contentTypes[key.slice(dot).toLowerCase()]) || "application/octet-stream";
}
