/** A local folder as a Store: atomic writes by temp file + rename in the same folder. */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { ConfigError } from "../runtime/errors.js";
import type { Store } from "./store.js";

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
    try {
      return (await stat(this.locate(key))).isFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
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
