/**
 * Where a run's outputs (and, for folders, its inputs) live. Keys are '/'-separated relative
 * paths. Writes are atomic: a reader sees the old object or the whole new one, never a part.
 */
export interface Store {
  /** The root as the user gave it (a folder path or a URI), for messages and manifests. */
  readonly root: string;
  read(key: string): Promise<Buffer>;
  write(key: string, body: Buffer, contentType?: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** A location a person or another tool can open. */
  locate(key: string): string;
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
