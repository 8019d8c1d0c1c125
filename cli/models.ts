/** `maskfleet models list | pull | verify`: the named models of models/manifest.json and their cache. */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { cacheRoot, listModels, modelDir, pullModel, verifyModel } from "../models/registry.js";

const megabytes = (bytes: number | null) => (bytes === null ? "?" : `${(bytes / 1e6).toFixed(0)} MB`);

export function addModelsCommand(program: Command): void {
  const models = program.command("models").description("named models: list, download (sha256-checked), verify the cache");
  const cacheFlag = ["--cache <dir>", "model cache folder (default: $MASKFLEET_CACHE or ~/.cache/maskfleet/models)"] as const;

  models
    .command("list")
    .description("every model in the manifest, with its task, size, licence and whether it is in the cache")
    .option(...cacheFlag)
    .action((flags: { cache?: string }) => {
      const opts = { cacheDir: flags.cache };
      process.stdout.write(`cache: ${cacheRoot(opts)}\n`);
      for (const m of listModels(opts)) {
        // Unknown when any file's size is not pinned yet.
        const bytes = m.files.every((f) => f.bytes !== null) ? m.files.reduce((sum, f) => sum + (f.bytes ?? 0), 0) : null;
        const cached = m.files.every((f) => existsSync(`${modelDir(m.name, opts)}/${f.file}`));
        process.stdout.write(`${m.name.padEnd(24)} ${m.task.padEnd(12)} ${megabytes(bytes).padStart(8)}  ${cached ? "cached " : "missing"}  ${m.licence}\n`);
      }
    });

  models
    .command("pull")
    .description("download models into the cache; each file is checked against its sha256 before it is kept")
    .argument("<names...>", "manifest names")
    .option(...cacheFlag)
    .option("--allow-unverified", "also download files the manifest pins no sha256 for (prints their hash)")
    .action(async (names: string[], flags: { cache?: string; allowUnverified?: boolean }) => {
      for (const name of names) {
        const pulled = await pullModel(name, { cacheDir: flags.cache, allowUnverified: flags.allowUnverified });
        for (const f of pulled.files) {
          process.stdout.write(`${name} ${f.role}: ${f.downloaded ? "downloaded" : "already cached"}, sha256 ${f.sha256}${f.pinned ? "" : " (not pinned)"}\n`);
        }
      }
    });

  models
    .command("verify")
    .description("sha256 of every cached file against the manifest; exits 1 on any missing or mismatched file")
    .argument("[names...]", "manifest names (default: all)")
    .option(...cacheFlag)
    .action(async (names: string[], flags: { cache?: string }) => {
      const opts = { cacheDir: flags.cache };
      const wanted = names.length ? names : listModels(opts).map((m) => m.name);
      let bad = 0;
      for (const name of wanted) {
        const result = await verifyModel(name, opts);
        for (const f of result.files) {
          if (f.status === "missing" || f.status === "mismatch") bad++;
          process.stdout.write(`${name} ${f.role}: ${f.status}${f.status === "mismatch" ? ` (expected ${f.expected}, got ${f.actual})` : ""}  ${f.path}\n`);
        }
      }
      if (bad > 0) process.exitCode = 1;
    });
}
