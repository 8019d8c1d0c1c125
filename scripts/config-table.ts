/**
 * Writes what is made from the config table (src/config/table.ts) into files that do not load it:
 * the README's config reference, and the MASKFLEET_ variable list of src/cli/env-names.ts (the run
 * commands check variables without loading the config and its generators). Each is a block between
 * `config-table:start` and `config-table:end` marker lines; test/config-table.test.ts fails while
 * either is stale.
 *
 *   npx tsx scripts/config-table.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Option } from "commander";
import { z } from "zod";
import { configEnvNames } from "../src/config/config.js";
import { configTable, type ConfigKeyRow } from "../src/config/table.js";
import { configFlagEnvNames } from "../src/cli/options.js";

const repoRoot = join(fileURLToPath(import.meta.url), "..", "..");

/** The README column of a schema's default: strings and lists as code, numbers and switches as they are. */
function defaultText(schema: z.ZodType | undefined): string {
  if (!(schema instanceof z.ZodDefault)) return "";
  const value: unknown = schema.parse(undefined);
  if (typeof value === "string") return `\`${value}\``;
  if (Array.isArray(value)) return `\`${JSON.stringify(value)}\``;
  return String(value);
}

/** The README's config reference: one row per key, in the table's order. */
export function readmeTable(): string[] {
  const rows = Object.entries(configTable).map(([key, row]: [string, ConfigKeyRow]) => {
    const flags = (row.flags ?? []).map((f) => `\`${new Option(f.spec).long}\``).join(", ");
    const cells = [key, row.doc.flag ?? flags, row.doc.default ?? defaultText(row.schema), row.doc.meaning];
    return `|${cells.map((c) => (c ? ` ${c} ` : " ")).join("|")}|`;
  });
  return ["| key | flag | default | meaning |", "|---|---|---|---|", ...rows];
}

/** Every MASKFLEET_ variable of the config flags and keys, sorted, one a line (as prettier keeps a long array). */
export function envNameLines(): string[] {
  return [...new Set([...configFlagEnvNames(), ...configEnvNames()])].sort().map((name) => `  "${name}",`);
}

/** The files holding a generated block, and what goes between its marker lines. */
export const generatedBlocks = [
  { path: "README.md", lines: readmeTable },
  { path: "src/cli/env-names.ts", lines: envNameLines },
] as const;

/** `text` with the lines between its `config-table:start` and `config-table:end` lines replaced. */
export function withBlock(text: string, block: string[], path: string): string {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.includes("config-table:start"));
  const end = lines.findIndex((l) => l.includes("config-table:end"));
  if (start < 0 || end < start) throw new Error(`${path}: no config-table:start ... config-table:end block`);
  return [...lines.slice(0, start + 1), ...block, ...lines.slice(end)].join("\n");
}

/** A file as this script would write it now. */
export function generatedText(path: string): string {
  const target = generatedBlocks.find((b) => b.path === path);
  if (!target) throw new Error(`${path} holds no generated block`);
  return withBlock(readFileSync(join(repoRoot, path), "utf8"), target.lines(), path);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  for (const { path } of generatedBlocks) {
    const now = generatedText(path);
    if (now === readFileSync(join(repoRoot, path), "utf8")) continue;
    writeFileSync(join(repoRoot, path), now);
    process.stdout.write(`wrote ${path}\n`);
  }
}
