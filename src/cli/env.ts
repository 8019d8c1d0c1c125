/**
 * maskfleet's environment variables: MASKFLEET_<FLAG> for each flag, MASKFLEET_<CONFIG_KEY> for each
 * config key, and a few of the deployment's own. A MASKFLEET_ variable none of them names is a typo
 * or a leftover: it is warned about, once, before a command runs.
 */
import type { Option } from "commander";
import { configVariableNames } from "./env-names.js";

/** `--ep` -> MASKFLEET_EP, `--no-estimate-foreground` -> MASKFLEET_ESTIMATE_FOREGROUND. */
export function envNameOfFlag(option: Option): string {
  const long = (option.long ?? option.flags).replace(/^--(no-)?/, "");
  return `MASKFLEET_${long.replace(/-/g, "_").toUpperCase()}`;
}

/** Read by others than the config flags and keys. */
const otherNames = [
  "MASKFLEET_LOG_LEVEL", // src/runtime/log.ts
  "MASKFLEET_UI_PORT", // maskfleet ui --port
  "MASKFLEET_UI_HOST", // maskfleet ui --host
  "MASKFLEET_MODEL_CHECK", // deploy/docker/entrypoint.sh: verify | pull | off
  "MASKFLEET_MODELS", // deploy/docker/entrypoint.sh: the models to pull, or none
  "MASKFLEET_CLI", // deploy/docker/entrypoint.sh: the CLI it runs
  "MASKFLEET_IMAGE", // deploy/docker-compose.yml: the image to run
  "MASKFLEET_CUDA_IMAGE", // deploy/docker-compose.yml: the mask pool's CUDA image
  "MASKFLEET_INPUT", // deploy/docker-compose.yml: the folder the producer reads
];

/** Every MASKFLEET_ variable maskfleet reads: the config flags', the config keys', and the others above. */
export function knownEnvNames(): Set<string> {
  return new Set([...configVariableNames, ...otherNames]);
}

/** Variables maskfleet once read under another name. */
const renamed: Record<string, string> = { MASKFLEET_CACHE_DIR: "MASKFLEET_CACHE" };

/** One warning line per MASKFLEET_ variable that nothing reads (a typo, a leftover). */
export function warnUnknownEnv(warn: (line: string) => void, env: NodeJS.ProcessEnv = process.env): void {
  const names = Object.keys(env).filter((name) => name.startsWith("MASKFLEET_"));
  if (!names.length) return;
  const known = knownEnvNames();
  for (const name of names.filter((n) => !known.has(n)).sort()) {
    const now = renamed[name];
    warn(
      now
        ? `maskfleet: warning: ${name} is not read any more (ignored): set ${now} instead`
        : `maskfleet: warning: ${name} is not a maskfleet variable (ignored); \`maskfleet <command> --help\` shows each flag's`,
    );
  }
}
