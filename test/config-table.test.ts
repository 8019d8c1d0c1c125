/**
 * The config table (src/config/table.ts) is the one place a key is declared: the config schema,
 * the image options, the CLI flags, the MASKFLEET_ variables and the README's config reference are
 * made from it. These fail when any of them drifts from it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, type Option } from "commander";
import { configEnvNames, configSchema, fromEnv, resolveConfig, type Config } from "../src/config/config.js";
import { configFileFlag, configTable, envNameOfKey, imageKeys, type ConfigKeyRow } from "../src/config/table.js";
import { imageOptionsSchema, pickImageOptions } from "../src/config/image-options.js";
import { GENERATOR_NAMES, generatorBackend, generatorOptionShapes } from "../src/generators/registry.js";
import { imageIdOf } from "../src/pipeline/jobs.js";
import { addConfigFlags } from "../src/cli/options.js";
import { envNameOfFlag } from "../src/cli/env.js";
import { configVariableNames } from "../src/cli/env-names.js";
import { generatedBlocks, generatedText } from "../scripts/config-table.js";
import { repoRoot } from "./helpers.js";

const rows = Object.entries(configTable) as [string, ConfigKeyRow][];
const sorted = (keys: Iterable<string>) => [...keys].sort();

/** The generator that owns a generator-only key; undefined for the config's own keys. */
const ownerOf = (key: string) => GENERATOR_NAMES.find((name) => key in generatorBackend(name).options);

describe("the config table", () => {
  it("has exactly one row per config key, whose schema the config validates with", () => {
    assert.deepEqual(sorted(Object.keys(configTable)), sorted(Object.keys(configSchema.shape)));
    // A row without a schema is a generator's own key: its backend declares the schema.
    assert.deepEqual(sorted(rows.filter(([, row]) => !row.schema).map(([key]) => key)), sorted(Object.keys(generatorOptionShapes)));
    for (const [key, row] of rows) if (row.schema) assert.equal((configSchema.shape as Record<string, unknown>)[key], row.schema, key);
  });

  it("makes every config flag, in its order, with its help text, scope and variable", () => {
    const tableFlags = [configFileFlag, ...rows.flatMap(([, row]) => row.flags ?? [])];
    for (const worker of [false, true]) {
      const cmd = addConfigFlags(new Command("x"), { worker });
      assert.deepEqual(
        cmd.options.map((o) => o.flags),
        tableFlags.map((f) => f.spec),
      );
      cmd.options.forEach((option: Option, i) => {
        const flag = tableFlags[i] as (typeof tableFlags)[number];
        assert.ok(option.description.startsWith(worker && flag.worker ? flag.worker : flag.help), option.flags);
        // A worker hides the job flags it ignores.
        assert.equal(option.hidden, worker && flag.scope === "job" && !flag.worker, option.flags);
        // Read by commander (MASKFLEET_EP) or with the config (MASKFLEET_SAM_MODEL): either way, the flag's own variable.
        const env = option.envVar ?? /\(env: (MASKFLEET_\w+)/.exec(option.description)?.[1];
        assert.equal(env, envNameOfFlag(option), option.flags);
      });
    }
  });

  it("names every variable: one per key, one per flag, and the unknown-variable check's list is both", () => {
    assert.deepEqual(configEnvNames(), Object.keys(configSchema.shape).map(envNameOfKey));
    assert.equal(envNameOfKey("cacheDir"), "MASKFLEET_CACHE");
    assert.equal(envNameOfKey("samModel"), "MASKFLEET_SAM_MODEL");
    for (const [key] of rows) assert.ok(key in fromEnv({ [envNameOfKey(key)]: "1" }), `${envNameOfKey(key)} reads ${key}`);
    const flagNames = addConfigFlags(new Command("x")).options.map(envNameOfFlag);
    assert.deepEqual(sorted(configVariableNames), sorted(new Set([...flagNames, ...configEnvNames()])));
  });

  it("picks the image options: exactly the keys marked as reaching the jobs, a generator's own only while it is the one", () => {
    assert.deepEqual(sorted(Object.keys(imageOptionsSchema.shape)), sorted(imageKeys));
    for (const generator of GENERATOR_NAMES) {
      const config = resolveConfig({ generator });
      const picked = Object.keys(pickImageOptions(config));
      const expected = imageKeys.filter((key) => !ownerOf(key) || ownerOf(key) === generator);
      assert.deepEqual(sorted(picked), sorted(expected), generator);
    }
    // The jobs carry what the producer's config settled; the table's flags for them are job flags.
    for (const [key, row] of rows) if (row.effect !== "process") for (const flag of row.flags ?? []) assert.equal(flag.scope, "job", `${key}: ${flag.spec}`);
  });

  it("a key that changes outputs changes the image id; a gate or a process-only key does not", () => {
    const content = Buffer.from("photo");
    for (const [key, row] of rows) {
      const config = resolveConfig({ generator: ownerOf(key) ?? "composite" });
      const options = pickImageOptions(config);
      const id = imageIdOf(content, "/out", options);
      if (row.effect !== "process") {
        // imageIdOf takes the options as given: any other value stands for a changed one.
        const changed = imageIdOf(content, "/out", { ...options, [key]: { changed: key } });
        if (row.effect === "output") assert.notEqual(changed, id, `${key} changes outputs: the image id must change`);
        else assert.equal(changed, id, `${key} is a gate: the image id must not change`);
      } else {
        const other = pickImageOptions({ ...config, [key]: { changed: key } } as Config);
        assert.deepEqual(other, options, `${key} is read by the process: the image options must not carry it`);
      }
    }
    // Through the config as a user sets it.
    const base = imageIdOf(content, "/out", pickImageOptions(resolveConfig({})));
    const idOf = (input: Record<string, unknown>) => imageIdOf(content, "/out", pickImageOptions(resolveConfig(input)));
    assert.equal(idOf({ concurrency: { mask: 3 }, redisUrl: "redis://elsewhere:6379", threads: 7, minMaskQuality: 0.5 }), base);
    assert.notEqual(idOf({ featherPx: 9 }), base);
    assert.notEqual(idOf({ maskSelection: "best" }), base);
  });

  it("the README's config reference and the variable list are what scripts/config-table.ts writes now", () => {
    for (const { path } of generatedBlocks) {
      assert.equal(readFileSync(join(repoRoot, path), "utf8"), generatedText(path), `${path} is stale: run npx tsx scripts/config-table.ts`);
    }
  });
});
