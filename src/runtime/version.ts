/** maskfleet's own version: package.json's, found upward from this file (source and dist alike). */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let version: string | undefined;

export function maskfleetVersion(): string {
  if (version === undefined) {
    version = "unknown";
    for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
      const file = join(dir, "package.json");
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
        if (pkg.name === "maskfleet" && pkg.version) {
          version = pkg.version;
          break;
        }
      }
      if (dirname(dir) === dir) break;
    }
  }
  return version;
}
