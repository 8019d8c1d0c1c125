/**
 * What every AWS client of maskfleet shares: region, named profile, a per-service endpoint
 * override (S3-compatible stores, local stand-ins), and one credentials check before any work.
 *
 * The region is resolved as the AWS CLI and SDKs do (resolveRegion): maskfleet's own setting
 * (--region, config file, MASKFLEET_REGION), then AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * `region` in the shared config files, and us-east-1 last.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { ConfigError } from "./errors.js";

export type AwsService = "s3" | "bedrock" | "rekognition";

export interface AwsSettings {
  /** Default: resolveRegion without a setting of maskfleet's own (AWS_REGION, ..., us-east-1). */
  region?: string;
  /** A profile of ~/.aws/config and ~/.aws/credentials (default: the SDK's chain). */
  profile?: string;
  /** Endpoint per service (default: AWS's, or AWS_ENDPOINT_URL_<SERVICE> as the SDK reads it). */
  endpoints?: Partial<Record<AwsService, string>>;
}

/** Constructor options for an AWS SDK v3 client of `service`. */
export function awsClientConfig(settings: AwsSettings, service: AwsService) {
  const endpoint = settings.endpoints?.[service];
  return {
    region: settings.region ?? resolveRegion({ profile: settings.profile, env: process.env }),
    credentials: defaultProvider(settings.profile ? { profile: settings.profile } : {}),
    ...(endpoint ? { endpoint } : {}),
  };
}

/** Resolves credentials once, so a missing or broken setup is one clear error before any job runs. */
export async function assertAwsCredentials(settings: AwsSettings): Promise<void> {
  try {
    await defaultProvider(settings.profile ? { profile: settings.profile } : {})();
  } catch (err) {
    const where = settings.profile ? `profile "${settings.profile}"` : "the environment, ~/.aws or an instance role";
    throw new ConfigError("aws", `no AWS credentials found in ${where} (${(err as Error).message.split("\n")[0]})`, { cause: err });
  }
}

const DEFAULT_REGION = "us-east-1";

/**
 * The region, first found: `region` (maskfleet's flag, config file or MASKFLEET_REGION), AWS_REGION,
 * AWS_DEFAULT_REGION, the `region` of the profile (`profile`, else AWS_PROFILE, else "default") in
 * the shared config file (AWS_CONFIG_FILE, else ~/.aws/config) or, as the SDK also reads it, the
 * credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials), else us-east-1.
 * Pure apart from reading those two files (synchronously; a missing file is no error).
 */
export function resolveRegion(o: { region?: string | undefined; profile?: string | undefined; env: NodeJS.ProcessEnv }): string {
  const { env } = o;
  const set = (v: string | undefined) => (v !== undefined && v.trim() !== "" ? v.trim() : undefined);
  return set(o.region) ?? set(env.AWS_REGION) ?? set(env.AWS_DEFAULT_REGION) ?? profileRegion(set(o.profile) ?? set(env.AWS_PROFILE) ?? "default", env) ?? DEFAULT_REGION;
}

/** The profile's `region`: the config file's `[profile NAME]` (`[default]` or `[profile default]`), then the credentials file's `[NAME]`. */
function profileRegion(profile: string, env: NodeJS.ProcessEnv): string | undefined {
  const home = env.HOME || env.USERPROFILE || homedir();
  const path = (override: string | undefined, file: string) => (override ? (override.startsWith("~/") ? join(home, override.slice(2)) : override) : join(home, ".aws", file));
  const config = readIni(path(env.AWS_CONFIG_FILE, "config"));
  const credentials = readIni(path(env.AWS_SHARED_CREDENTIALS_FILE, "credentials"));
  const fromConfig = config[`profile ${profile}`]?.region ?? (profile === "default" ? config.default?.region : undefined);
  return fromConfig || credentials[profile]?.region || undefined;
}

/**
 * An AWS shared config/credentials file as the SDK's parser (@smithy/core's parseIni) reads it:
 * sections by name (`[profile  x]` -> "profile x"), `key = value`, `;`/`#` comments, and indented
 * sub-keys under a key with no value (kept as "key.sub", never mistaken for a top-level key).
 * The SDK only reads these files asynchronously and does not export its parser.
 */
function readIni(path: string): Record<string, Record<string, string> | undefined> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {}; // no file (or unreadable): the SDK ignores it too
  }
  // Null prototypes: a section or key named "__proto__" is data, not the object's prototype.
  const out = Object.create(null) as Record<string, Record<string, string> | undefined>;
  let section: Record<string, string> | undefined;
  let sub: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const trimmed = (line.split(/(?:^|\s)[;#]/)[0] ?? "").trim();
    if (trimmed.startsWith("[") && trimmed.endsWith("]")) {
      const m = /^([\w-]+)\s+(["']?)([\w\-@+.%:/]+)\2$/.exec(trimmed.slice(1, -1).trim());
      const name = m ? `${m[1]} ${m[3]}` : trimmed.slice(1, -1).trim();
      section = out[name] ??= Object.create(null) as Record<string, string>;
      sub = undefined;
      continue;
    }
    const eq = trimmed.indexOf("=");
    if (!section || eq <= 0) continue;
    const key = trimmed.slice(0, eq).trim();
    const value = trimmed.slice(eq + 1).trim();
    if (value === "") {
      sub = key;
      continue;
    }
    if (sub && line.trimStart() === line) sub = undefined;
    section[sub ? `${sub}.${key}` : key] = value;
  }
  return out;
}
