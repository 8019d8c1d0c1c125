/**
 * The config flags of `run`, `enqueue` and `worker`, made from the config table (src/config/table.ts),
 * where each is declared with the key it sets. Each flag also reads MASKFLEET_<FLAG> (`--ep` ->
 * MASKFLEET_EP; `--help` shows it); the config keys' own names (MASKFLEET_EXECUTION_PROVIDER) still
 * work. Numbers and choices are checked against the config schema as they are parsed, so a bad
 * value names the flag and the range.
 */
import { existsSync, readFileSync } from "node:fs";
import { InvalidArgumentError, Option, type Command } from "commander";
import { z } from "zod";
import { configEnvNames, configSchema, loadConfig, parseSeedRange, type Config, type ConfigInput } from "../config/config.js";
import { configFileFlag, configTable, type ConfigFlag, type ConfigKey, type ConfigKeyRow } from "../config/table.js";
import { ConfigError } from "../runtime/errors.js";
import { envNameOfFlag } from "./env.js";

/** A config flag: the table row's key it sets (none for --config: read by configFromFlags itself). */
interface FlagRow extends ConfigFlag {
  key?: ConfigKey;
}

/** The flags in `--help` order: --config, then each key's flags in the table's order. */
const flagRows: FlagRow[] = [
  configFileFlag,
  ...Object.entries(configTable).flatMap(([key, row]: [string, ConfigKeyRow]) => (row.flags ?? []).map((flag) => ({ ...flag, key: key as ConfigKey }))),
];

/** Flag values that are not their key's value as given. */
const fromFlag: Record<string, (value: string) => unknown> = {
  "--seeds": (range) => parseSeedRange(range, "--seeds"),
  "--prompts-file": (file) => (file ? readPromptsFile(file) : undefined),
};

const keyEnvNames = new Set(configEnvNames());

/** A config key's schema without its optional/default wrappers. */
function schemaOf(key: string): z.ZodType | undefined {
  let s = (configSchema.shape as Record<string, z.ZodType | undefined>)[key];
  while (s instanceof z.ZodOptional || s instanceof z.ZodDefault) s = s.def.innerType as z.ZodType;
  return s;
}

const unbounded = (n: number | null | undefined) => n === null || n === undefined || !Number.isFinite(n) || Math.abs(n) >= Number.MAX_SAFE_INTEGER;

/** "a number 0-1", "a whole number >= 1", "a whole number -256 to 256": what a number flag takes. */
export function numberRangeText(schema: z.ZodNumber): string {
  const { minValue: min, maxValue: max } = schema;
  const kind = schema.isInt ? "a whole number" : "a number";
  if (!unbounded(min) && !unbounded(max)) return `${kind} ${min}${(min as number) < 0 ? " to " : "-"}${max}`;
  if (!unbounded(min)) return `${kind} >= ${min}`;
  if (!unbounded(max)) return `${kind} <= ${max}`;
  return kind;
}

/** A parser for a number flag that keeps to its config key's range: "expected a number 0-1, got abc". */
export function numberParser(schema: z.ZodNumber): (value: string) => number {
  const what = numberRangeText(schema);
  return (value) => {
    const n = value.trim() === "" ? NaN : Number(value);
    const ok = Number.isFinite(n) && (!schema.isInt || Number.isInteger(n)) && n >= (schema.minValue ?? -Infinity) && n <= (schema.maxValue ?? Infinity);
    if (!ok) throw new InvalidArgumentError(`expected ${what}, got ${value}`);
    return n;
  };
}

/** The commander option of a table row: its MASKFLEET_ variable, its parser or choices from the schema. */
function optionOf(row: FlagRow, forWorker: boolean): Option {
  const option = new Option(row.spec, forWorker && row.worker ? row.worker : row.help);
  const schema = row.key ? schemaOf(row.key) : undefined;
  if (schema instanceof z.ZodNumber) option.argParser(numberParser(schema));
  else if (schema instanceof z.ZodEnum) option.choices(schema.options.map(String));
  // A variable that is also a config key's (MASKFLEET_SAM_MODEL) is read with the config, as JSON
  // when it looks like it, a list per line; commander reads the others (MASKFLEET_EP), which win.
  const env = envNameOfFlag(option);
  if (keyEnvNames.has(env) || !option.required) option.description += ` (env: ${option.negate ? `${env}=false` : env})`;
  else option.env(env);
  return option;
}

/** The config flags; a worker's help shows only those a worker reads: the others are hidden, and warned about when given. */
export function addConfigFlags(cmd: Command, opts: { worker?: boolean } = {}): Command {
  for (const row of flagRows) {
    const option = optionOf(row, opts.worker === true);
    if (opts.worker && row.scope === "job" && !row.worker) option.hideHelp();
    cmd.addOption(option);
  }
  return cmd;
}

/** The variables of the config flags (MASKFLEET_EP, MASKFLEET_CONFIG, ...). */
export function configFlagEnvNames(): string[] {
  return flagRows.map((row) => envNameOfFlag(new Option(row.spec)));
}

/** The job flags given on a worker's command line: jobs carry those settings, so the worker ignores them. */
export function ignoredByWorker(cmd: Command): string[] {
  return flagRows
    .filter((row) => row.scope === "job" && !row.worker)
    .map((row) => cmd.options.find((o) => o.flags === row.spec))
    .filter((o): o is Option => o !== undefined && cmd.getOptionValueSource(o.attributeName()) === "cli")
    .map((o) => o.long as string);
}

export type ConfigFlags = Record<string, unknown> & { config?: string; promptsFile?: string; seeds?: string; concurrency?: number };

/**
 * The config of these flags: defaults < YAML file (--config, MASKFLEET_CONFIG, ./maskfleet.yaml) <
 * environment < flags. A worker's config leaves the job flags out: jobs carry those settings.
 */
export function configFromFlags(flags: ConfigFlags, extra: ConfigInput = {}, opts: { worker?: boolean } = {}): Config {
  const overrides: ConfigInput = {};
  // In the table's order, so --prompts-file wins over --prompts as it always did.
  for (const row of flagRows) {
    if (!row.key || (opts.worker && row.scope === "job" && !row.worker)) continue;
    const option = new Option(row.spec);
    const value = flags[option.attributeName()];
    const convert = fromFlag[option.long as string];
    // A --no- switch: only `false` is a choice the user made; `true` is commander's default.
    const given = option.negate ? (value === false ? false : undefined) : value !== undefined && convert ? convert(value as string) : value;
    if (given !== undefined) overrides[row.key] = given;
  }
  return loadConfig({ file: flags.config ?? defaultConfigFile(), overrides: { ...overrides, ...extra } });
}

/** ./maskfleet.yaml (or .yml) in the working folder, when no config is named. */
export function defaultConfigFile(cwd = process.cwd()): string | undefined {
  return ["maskfleet.yaml", "maskfleet.yml"].map((name) => `${cwd}/${name}`).find((path) => existsSync(path));
}

function readPromptsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError("--prompts-file", `cannot read ${file}: ${(err as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}
