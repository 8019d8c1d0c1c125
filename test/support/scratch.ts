/** The repository root and scratch folders under test/.tmp (git-ignored), for tests and their helpers. */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dirname, "..", "..");

/** An empty folder test/.tmp/<name>, emptied first when an earlier run left it. */
export async function scratchDir(name: string): Promise<string> {
  const dir = join(repoRoot, "test", ".tmp", name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}
