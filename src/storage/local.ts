/** A local folder as a Store: atomic writes by temp file + rename in the same folder. */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { ConfigError } from "../runtime/errors.js";
import type { ListOptions, Store, StoreEntry } from "./store.js";

export class LocalStore implements Store {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  locate(key: string): string {
    const path = resolve(this.root, ...key.split("/"));
    if (path !== this.root && !path.startsWith(this.root + sep)) {
      throw new Error(`key ${JSON.stringify(key)} leaves the output folder ${this.root}`);
    }
    return path;
  }

  read(key: string): Promise<Buffer> {
    return readFile(this.locate(key));
  }

  async write(key: string, body: Buffer): Promise<void> {
    const path = this.locate(key);
    await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
      throw writeError(err, dirname(path));
    });
    const tmp = join(dirname(path), `.${randomBytes(6).toString("hex")}.partial`);
    try {
      await writeFile(tmp, body);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw writeError(err, path);
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== undefined;
  }

  async head(key: string): Promise<StoreEntry | undefined> {
    try {
      const info = await stat(this.locate(key));
      return info.isFile() ? { key, size: info.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Files under `prefix`, one folder listing per level in memory; folders linked by symlinks are not entered (no loops). */
  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<StoreEntry> {
    const start = prefix.replace(/\/+$/, "");
    yield* this.walk(start ? `${start}/` : "", options.startAfter);
  }

  private async *walk(dirKey: string, startAfter: string | undefined): AsyncGenerator<StoreEntry> {
    let entries;
    try {
      entries = await readdir(this.locate(dirKey || "."), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    // Byte order of the whole key, as S3 lists: a folder's keys sort as `name/...`.
    const named = entries.map((e) => ({ entry: e, key: dirKey + e.name + (e.isDirectory() ? "/" : "") }));
    named.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    for (const { entry, key } of named) {
      const listedBefore = startAfter !== undefined && Buffer.compare(Buffer.from(key), Buffer.from(startAfter)) <= 0;
      if (entry.isDirectory()) {
        // A folder is passed whole when it sorts before the resume point and does not hold it.
        if (!listedBefore || startAfter?.startsWith(key)) yield* this.walk(key, startAfter);
        continue;
      }
      if (listedBefore) continue;
      const found = await this.head(key);
      if (found) yield found;
    }
  }
}

/**
 * What a failed write means for the job: no permission or a read-only file system will not heal
 * by retrying (a ConfigError on `out`: the job fails at once with this reason); a full disk may
 * (retried with backoff, then failed with this reason). Either way the worker goes on.
 */
export function writeError(err: unknown, path: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return new ConfigError("out", `${path}: permission denied`, { cause: err });
  if (code === "EROFS") return new ConfigError("out", `${path}: read-only file system`, { cause: err });
  if (code === "ENOSPC" || code === "EDQUOT") return new Error(`${path}: no space left on the device`, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}
