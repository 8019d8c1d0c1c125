/** The flags shared by `run`, `enqueue` and `worker`, mapped onto config keys. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { loadConfig, parseSeedRange, type Config, type ConfigInput } from "../shared/config.js";
import { ConfigError } from "../shared/errors.js";

export function addConfigFlags(cmd: Command): Command {
  return cmd
    .option("-c, --config <file>", "YAML config (the old script's keys load unchanged)")
    .option("-o, --out <dir>", "output folder")
    .option("-t, --target <target>", 'face | auto | boxes | a label (e.g. "Car")')
    .option("--detector <name>", "local | rekognition")
    .option("--detector-model <spec>", "face detector: manifest name or local .onnx / folder")
    .option("--min-confidence <n>", "detector threshold, 0-1", Number)
    .option("--sam-model <spec>", "SAM model: manifest name or local folder")
    .option("--ep <provider>", "execution provider: cpu | cuda")
    .option("--threads <n>", "onnxruntime threads per session (0 = default)", Number)
    .option("--generator <name>", "composite | titan | nova")
    .option("--mode <mode>", "outpaint (new background) | inpaint (new object)")
    .option("-p, --prompts <prompt...>", "candidate prompts")
    .option("--prompts-file <file>", "candidate prompts, one per line")
    .option("--seeds <range>", 'seed range, inclusive: "34-46" or "34,46"')
    .option("--background <value>", 'composite background: colour ("#ffffff"), "blur", or an image path')
    .option("--grow <px>", "grow (or, negative, shrink) the mask by N px", Number)
    .option("--feather <px>", "feather the mask edge by N px", Number)
    .option("--redis <url>", "Redis URL")
    .option("--attempts <n>", "attempts per job for transient errors", Number);
}

export interface ConfigFlags {
  config?: string;
  out?: string;
  target?: string;
  detector?: string;
  detectorModel?: string;
  minConfidence?: number;
  samModel?: string;
  ep?: string;
  threads?: number;
  generator?: string;
  mode?: string;
  prompts?: string[];
  promptsFile?: string;
  seeds?: string;
  background?: string;
  grow?: number;
  feather?: number;
  redis?: string;
  attempts?: number;
  concurrency?: number;
}

export function configFromFlags(flags: ConfigFlags, extra: ConfigInput = {}): Config {
  const overrides: ConfigInput = {
    out: flags.out,
    target: flags.target,
    detector: flags.detector,
    detectorModel: flags.detectorModel,
    minConfidence: flags.minConfidence,
    samModel: flags.samModel,
    executionProvider: flags.ep,
    threads: flags.threads,
    generator: flags.generator,
    mode: flags.mode,
    prompts: flags.promptsFile ? readPromptsFile(flags.promptsFile) : flags.prompts,
    seeds: flags.seeds !== undefined ? parseSeedRange(flags.seeds, "--seeds") : undefined,
    background: flags.background,
    growPx: flags.grow,
    featherPx: flags.feather,
    redisUrl: flags.redis,
    attempts: flags.attempts,
    ...extra,
  };
  return loadConfig({ file: flags.config, overrides });
}

function readPromptsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError("--prompts-file", `cannot read ${file}: ${(err as Error).message}`);
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}
