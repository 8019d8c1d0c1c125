/**
 * `maskfleet models list | show | pull | verify`: the named models of src/models/manifest.json and their
 * cache. `models cloud`: the Bedrock image-editing models as a region's control plane lists them.
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { awsSettingsOf, loadConfig } from "../config/config.js";
import { cacheRoot, getModel, listModels, modelDir, pullModel, verifyModel, type ModelEntry } from "../models/registry.js";
// CPU figures measured by benchmarks/models.ts on full-size graphs of each architecture.
import speedJson from "../models/speed.json" with { type: "json" };

interface Speed {
  msPerImage: number;
  msPerExtraBox?: number;
  peakRssMb: number;
  measured: string;
}
const speeds = speedJson as { machine: string; weights: string; models: Record<string, Speed | undefined> };

const megabytes = (bytes: number | null) => (bytes === null ? "?" : `${(bytes / 1e6).toFixed(0)} MB`);
const seconds = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`);

/** Total file size, or null while any file's size is not pinned yet. */
function sizeOf(m: ModelEntry): number | null {
  return m.files.every((f) => f.bytes !== null) ? m.files.reduce((sum, f) => sum + (f.bytes ?? 0), 0) : null;
}

/** "7.1 s" per image, with "+58 ms/box" for segmenters; "?" when not measured. */
function speedOf(name: string): string {
  const s = speeds.models[name];
  if (!s) return "?";
  return `${seconds(s.msPerImage)}${s.msPerExtraBox !== undefined ? ` +${seconds(s.msPerExtraBox)}/box` : ""}`;
}

/** The licence's name, without the explanation in brackets. */
const licenceName = (m: ModelEntry) => m.licence.split(" (")[0] as string;

export function addModelsCommand(program: Command): void {
  const models = program.command("models").description("named models: list, download (sha256-checked), verify the cache");
  const cacheFlag = ["--cache <dir>", "model cache folder (default: $MASKFLEET_CACHE or ~/.cache/maskfleet/models)"] as const;

  models
    .command("list")
    .description("every model in the manifest: task, size, CPU time per image measured here, licence, cached or not, and what it is good for")
    .option(...cacheFlag)
    .option("--json", "one JSON array instead of the table")
    .action((flags: { cache?: string; json?: boolean }) => {
      const opts = { cacheDir: flags.cache };
      const rows = listModels(opts).map((m) => ({
        name: m.name,
        task: m.task,
        format: m.format,
        bytes: sizeOf(m),
        cpu: speeds.models[m.name] ?? null,
        licence: m.licence,
        licenceName: licenceName(m),
        cached: m.files.every((f) => existsSync(`${modelDir(m.name, opts)}/${f.file}`)),
        pinned: m.files.every((f) => f.sha256 !== null) && (m.archive === undefined || m.archive.sha256 !== null),
        goodFor: m.goodFor ?? null,
      }));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      process.stdout.write(`cache: ${cacheRoot(opts)}\nCPU: time per image on ${speeds.machine}, ${speeds.weights}\n\n`);
      const line = (cells: string[]) => `${cells.map((c, i) => (i === 2 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join("  ")}`.trimEnd();
      const widths = [28, 11, 8, 17, 8, 8, 0];
      process.stdout.write(`${line(["model", "task", "size", "CPU per image", "sha256", "cache", "licence"])}\n`);
      for (const r of rows) {
        const cells = [r.name, r.task, megabytes(r.bytes), speedOf(r.name), r.pinned ? "pinned" : "unpinned", r.cached ? "cached" : "-", r.licenceName];
        process.stdout.write(`${line(cells)}\n`);
        if (r.goodFor) process.stdout.write(`${"".padEnd(30)}${r.goodFor}\n`);
      }
    });

  models
    .command("show")
    .description("everything the manifest says of one model: files, input/output, source, licence, CPU time")
    .argument("<name>", "manifest name")
    .option(...cacheFlag)
    .action((name: string, flags: { cache?: string }) => {
      const opts = { cacheDir: flags.cache };
      const m = getModel(name, opts);
      const s = speeds.models[name];
      const lines = [
        `${m.name} (${m.task}, format ${m.format})`,
        m.description,
        ...(m.goodFor ? [`good for: ${m.goodFor}`] : []),
        `licence: ${m.licence}`,
        `CPU: ${s ? `${speedOf(name)} per image, peak RSS ${s.peakRssMb} MB (${speeds.machine}; ${speeds.weights}; ${s.measured})` : "not measured"}`,
        `input/output: ${m.input}`,
        `source: ${m.source}`,
        `cache folder: ${modelDir(m.name, opts)}`,
        ...m.files.map((f) => `  ${f.role}: ${f.file}  ${f.bytes === null ? "size ?" : megabytes(f.bytes)}  sha256 ${f.sha256 ?? "not pinned"}`),
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
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

  models
    .command("cloud")
    .description("Bedrock image-editing models in a region as its control plane lists them: Active, Legacy, end of life, and how maskfleet calls each")
    .option("--region <region>", "AWS region (default: MASKFLEET_REGION, AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1)")
    .option("--profile <name>", "AWS profile")
    .option("--json", "one JSON array of the rows instead of the table")
    .action(async (flags: { region?: string; profile?: string; json?: boolean }) => {
      const aws = awsSettingsOf(loadConfig({ overrides: { region: flags.region, awsProfile: flags.profile } }));
      // Loaded here only: the control-plane client is not needed by any other command.
      const { formatCloudModels, listImageEditingModels } = await import("../generators/lifecycle.js");
      const rows = await listImageEditingModels(aws);
      process.stdout.write(flags.json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatCloudModels(rows, aws.region)}\n`);
    });
}
