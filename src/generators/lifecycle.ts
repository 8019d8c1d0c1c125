/**
 * The Bedrock lifecycle gate (DESIGN.md "Bedrock model lifecycle"): before any paid work, every
 * Bedrock model a run will call is looked up on the control plane (`@aws-sdk/client-bedrock`).
 * A `us.`/`eu.`/`apac.`/`global.` id is a cross-region inference profile, resolved first with
 * GetInferenceProfile to the foundation models it routes to; each model is then asked with
 * GetFoundationModel (lifecycle) and GetFoundationModelAvailability (enabled for this account).
 *
 * - ACTIVE: nothing. LEGACY: one warning line with its end-of-life date, then on.
 * - Gone (ResourceNotFoundException, or an end of life in the past) or not enabled for the
 *   account: a one-line ConfigError naming the model, the reason and what to use instead.
 * - The lookup itself denied (no `bedrock:GetFoundationModel`): one warning line, then on; the
 *   availability lookup denied: skipped silently. Anything else (network, bad credentials): a
 *   one-line ConfigError.
 *
 * Also `listImageEditingModels` / `formatCloudModels` for `maskfleet models cloud`: the image
 * editors of src/generators/bedrock-models.ts as a region's control plane lists them, plus the table's
 * models it no longer lists (end of life).
 *
 * Endpoint: `aws.endpoints.bedrock` is the RUNTIME's override and is not used here; the control
 * plane's comes from the SDK's own AWS_ENDPOINT_URL_BEDROCK (or AWS_ENDPOINT_URL).
 */
import {
  BedrockClient,
  GetFoundationModelAvailabilityCommand,
  GetFoundationModelCommand,
  GetInferenceProfileCommand,
  ListFoundationModelsCommand,
  type FoundationModelLifecycle,
} from "@aws-sdk/client-bedrock";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { awsClientConfig, type AwsSettings } from "../runtime/aws.js";
import { ConfigError } from "../runtime/errors.js";
import { BEDROCK_IMAGE_MODELS, STABILITY_REGIONS, familyOf, isInferenceProfile, knownModel, stabilityServiceOf, stripProfilePrefix, type BedrockFamily } from "./bedrock-models.js";

export interface LifecycleOptions {
  /** Receives each warning, one line (Legacy model, lifecycle not checkable). */
  warn(line: string): void;
  /** What to use instead of a model, e.g. "use --generator stability (Stability AI Image Services)". */
  insteadOf(modelId: string): string;
  /** The present, for "end of life in the past" (default: now). */
  now?: Date;
}

const CONTROL_TIMEOUT_MS = 10_000;

/** A control-plane client for `aws`'s region and credentials, HTTP/1.1, ~10 s per call, 2 attempts. */
function createControlClient(aws: AwsSettings): BedrockClient {
  // No `endpoints`: the runtime's override must not redirect the control plane (see the module comment).
  return new BedrockClient({
    ...awsClientConfig({ ...aws, endpoints: {} }, "bedrock"),
    maxAttempts: 2,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: CONTROL_TIMEOUT_MS,
      requestTimeout: CONTROL_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    }),
  });
}

/** Checks every model id before any paid work (see the module comment); throws a one-line ConfigError. */
export async function checkBedrockModels(modelIds: string[], aws: AwsSettings, opts: LifecycleOptions): Promise<void> {
  const ids = [...new Set(modelIds.filter((id) => id !== ""))];
  if (ids.length === 0) return;
  const client = createControlClient(aws);
  try {
    const region = await client.config.region();
    const checked = new Set<string>();
    for (const id of ids) {
      const ctx: Check = { client, region, id, opts, now: opts.now ?? new Date() };
      for (const modelId of await modelsOf(ctx)) {
        if (checked.has(modelId)) continue;
        checked.add(modelId);
        await checkModel(ctx, modelId);
      }
    }
  } finally {
    client.destroy();
  }
}

interface Check {
  client: BedrockClient;
  region: string;
  /** The id as the user gave it. */
  id: string;
  opts: LifecycleOptions;
  now: Date;
}

/** The foundation models behind an id: itself, or an inference profile's models (deduplicated). */
async function modelsOf(ctx: Check): Promise<string[]> {
  if (!isInferenceProfile(ctx.id)) return [ctx.id];
  try {
    const res = await ctx.client.send(new GetInferenceProfileCommand({ inferenceProfileIdentifier: ctx.id }));
    const ids = (res.models ?? []).map((m) => /foundation-model\/(.+)$/.exec(m.modelArn ?? "")?.[1]).filter((m): m is string => !!m);
    return ids.length ? [...new Set(ids)] : [stripProfilePrefix(ctx.id)];
  } catch (err) {
    // Not allowed to read profiles: the lifecycle of the model it names still tells the story.
    if (errorName(err) === "AccessDeniedException") return [stripProfilePrefix(ctx.id)];
    throw failure(ctx, ctx.id, err);
  }
}

async function checkModel(ctx: Check, modelId: string): Promise<void> {
  let lifecycle: FoundationModelLifecycle | undefined;
  try {
    const res = await ctx.client.send(new GetFoundationModelCommand({ modelIdentifier: modelId }));
    lifecycle = res.modelDetails?.modelLifecycle;
  } catch (err) {
    if (errorName(err) === "AccessDeniedException") {
      ctx.opts.warn(
        `cannot check the lifecycle of Bedrock model ${subject(ctx, modelId)} in ${ctx.region}: ${describe(err)} ` +
          `(the credentials lack bedrock:GetFoundationModel); going on unchecked`,
      );
      return;
    }
    throw failure(ctx, modelId, err);
  }
  const endOfLife = dateOf(lifecycle?.endOfLifeTime);
  if (lifecycle?.endOfLifeTime && lifecycle.endOfLifeTime.getTime() <= ctx.now.getTime()) throw gone(ctx, modelId, endOfLife);
  if (lifecycle?.status === "LEGACY") {
    const eol = endOfLife ?? tableModel(ctx.id, modelId)?.endOfLife;
    const since = dateOf(lifecycle.legacyTime) ?? tableModel(ctx.id, modelId)?.legacyDate;
    ctx.opts.warn(
      `Bedrock model ${subject(ctx, modelId)} is Legacy in ${ctx.region}${since ? ` since ${since}` : ""}, ` +
        `end of life ${eol ? (eol <= dateOf(ctx.now)! ? `${eol} (published; still served to this account)` : eol) : "not yet announced"}: new accounts cannot use it; ${ctx.opts.insteadOf(ctx.id)}`,
    );
  }
  await checkAvailability(ctx, modelId);
}

/** Enabled for this account? Skipped silently when the credentials may not ask. */
async function checkAvailability(ctx: Check, modelId: string): Promise<void> {
  let res;
  try {
    res = await ctx.client.send(new GetFoundationModelAvailabilityCommand({ modelId }));
  } catch (err) {
    if (errorName(err) === "AccessDeniedException") return;
    throw failure(ctx, modelId, err);
  }
  const blocked = [
    res.authorizationStatus === "NOT_AUTHORIZED" && "not authorized",
    res.entitlementAvailability === "NOT_AVAILABLE" && "no entitlement",
    res.regionAvailability === "NOT_AVAILABLE" && "not available in the region",
  ].filter((b): b is string => typeof b === "string");
  if (blocked.length === 0) return;
  throw new ConfigError(
    "modelId",
    `${subject(ctx, modelId)} is not enabled for this account in ${ctx.region} (${blocked.join(", ")}; request access in the Bedrock console); ${ctx.opts.insteadOf(ctx.id)}`,
  );
}

/** A failed lookup as one line: gone (404) or cannot check (anything else). */
function failure(ctx: Check, modelId: string, err: unknown): ConfigError {
  if (errorName(err) === "ResourceNotFoundException") return gone(ctx, modelId, tableModel(ctx.id, modelId)?.endOfLife);
  return new ConfigError("modelId", `cannot check Bedrock model ${subject(ctx, modelId)} in ${ctx.region}: ${describe(err)}`, { cause: err });
}

function gone(ctx: Check, modelId: string, endOfLife: string | undefined): ConfigError {
  const reason = endOfLife
    ? `reached end of life on Bedrock on ${endOfLife} and is not served in ${ctx.region}`
    : `is not offered in ${ctx.region} (end of life, or not served in this region)`;
  return new ConfigError("modelId", `${subject(ctx, modelId)} ${reason}; ${ctx.opts.insteadOf(ctx.id)}`);
}

/** The user's id, and the foundation model when a profile resolved to another id. */
function subject(ctx: Check, modelId: string): string {
  return modelId === ctx.id ? ctx.id : `${ctx.id} (model ${modelId})`;
}

function tableModel(id: string, modelId: string) {
  return knownModel(modelId) ?? knownModel(id);
}

function errorName(err: unknown): string {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === "string" ? name : "Error";
}

/** "Name: first line of the message", at most 300 characters: no stacks, no request dumps. */
function describe(err: unknown): string {
  const raw = (err as { message?: unknown } | null)?.message;
  const message = (typeof raw === "string" && raw ? raw : String(err)).split("\n")[0]!.trim().slice(0, 300);
  const name = errorName(err);
  return name === "Error" || message.startsWith(name) ? message : `${name}: ${message}`;
}

const dateOf = (d: Date | undefined) => (d ? d.toISOString().slice(0, 10) : undefined);

// --- maskfleet models cloud ---

export interface CloudModelRow {
  /** Foundation model id, e.g. "stability.stable-image-inpaint-v1:0". */
  modelId: string;
  name: string;
  provider: string;
  /** EOL: no longer listed by the service (or its end of life has passed). */
  status: "ACTIVE" | "LEGACY" | "EOL";
  /** ISO dates. */
  legacyDate?: string;
  endOfLife?: string;
  /** The cross-region inference profile maskfleet calls it through, e.g. "us.stability.stable-image-inpaint-v1:0". */
  inferenceProfile?: string;
  /** How maskfleet uses it, e.g. "--generator stability --edit search-replace". */
  maskfleet: string;
}

const PROVIDERS: Record<BedrockFamily, string> = { titan: "Amazon", nova: "Amazon", stability: "Stability AI" };
const STATUS_ORDER: Record<CloudModelRow["status"], number> = { ACTIVE: 0, LEGACY: 1, EOL: 2 };

/** An image editor maskfleet can drive: Titan and Nova Canvas image models, Stability Image Services with a known service. */
function isImageEditor(modelId: string): boolean {
  const family = familyOf(modelId);
  return family === "stability" ? stabilityServiceOf(modelId) !== undefined : family !== undefined;
}

function usageOf(modelId: string): string {
  const family = familyOf(modelId);
  if (family === "stability") return `--generator stability --edit ${stabilityServiceOf(modelId)}`;
  return family ? `--generator ${family} --model ${modelId}` : "-";
}

/** The image-editing models of ListFoundationModels(byOutputModality IMAGE), and the table's ones it no longer lists as EOL. */
export async function listImageEditingModels(aws: AwsSettings, now = new Date()): Promise<CloudModelRow[]> {
  const client = createControlClient(aws);
  let region = aws.region ?? "the default region";
  try {
    region = await client.config.region();
    const res = await client.send(new ListFoundationModelsCommand({ byOutputModality: "IMAGE" }));
    const rows: CloudModelRow[] = [];
    for (const s of res.modelSummaries ?? []) {
      if (!s.modelId || !isImageEditor(s.modelId)) continue;
      const table = knownModel(s.modelId);
      const life = s.modelLifecycle;
      const ended = life?.endOfLifeTime !== undefined && life.endOfLifeTime.getTime() <= now.getTime();
      rows.push(
        row(s.modelId, {
          name: s.modelName ?? table?.title ?? s.modelId,
          provider: s.providerName ?? PROVIDERS[familyOf(s.modelId) ?? "stability"],
          status: ended ? "EOL" : life?.status === "LEGACY" ? "LEGACY" : "ACTIVE",
          legacyDate: dateOf(life?.legacyTime) ?? table?.legacyDate,
          endOfLife: dateOf(life?.endOfLifeTime) ?? table?.endOfLife,
        }),
      );
    }
    // Titan and Nova models the service no longer lists have reached end of life. A Stability
    // model missing is only not offered in this region (formatCloudModels says where it is).
    const listed = new Set(rows.map((r) => r.modelId));
    for (const m of BEDROCK_IMAGE_MODELS) {
      const modelId = stripProfilePrefix(m.id);
      if (listed.has(modelId) || m.family === "stability") continue;
      rows.push(row(modelId, { name: m.title, provider: PROVIDERS[m.family], status: "EOL", legacyDate: m.legacyDate, endOfLife: m.endOfLife }));
    }
    const order = (r: CloudModelRow) => {
      const i = BEDROCK_IMAGE_MODELS.findIndex((m) => stripProfilePrefix(m.id) === r.modelId);
      return i < 0 ? BEDROCK_IMAGE_MODELS.length : i;
    };
    return rows.sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || order(a) - order(b) || a.modelId.localeCompare(b.modelId));
  } catch (err) {
    const name = errorName(err);
    const hint =
      name === "AccessDeniedException" ? " (the credentials lack bedrock:ListFoundationModels)" : name === "CredentialsProviderError" ? " (no usable AWS credentials)" : "";
    throw new ConfigError("aws", `cannot list Bedrock models in ${region}: ${describe(err)}${hint}`, { cause: err });
  } finally {
    client.destroy();
  }
}

function row(modelId: string, r: Omit<CloudModelRow, "modelId" | "maskfleet" | "inferenceProfile">): CloudModelRow {
  const profile = knownModel(modelId)?.id;
  return {
    modelId,
    name: r.name,
    provider: r.provider,
    status: r.status,
    ...(r.legacyDate && { legacyDate: r.legacyDate }),
    ...(r.endOfLife && { endOfLife: r.endOfLife }),
    ...(profile && isInferenceProfile(profile) && { inferenceProfile: profile }),
    maskfleet: usageOf(modelId),
  };
}

/** The rows as a plain terminal table. */
export function formatCloudModels(rows: CloudModelRow[], region: string): string {
  const header = ["status", "model (call as)", "name", "legacy", "end of life", "maskfleet"];
  const cells = rows.map((r) => [r.status, r.inferenceProfile ?? r.modelId, r.name, r.legacyDate ?? "-", r.endOfLife ?? "-", r.status === "EOL" ? "-" : r.maskfleet]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd();
  const out = [`Bedrock image-editing models in ${region}:`, line(header), ...cells.map(line)];
  if (rows.length === 0) out.push("(none)");
  if (!rows.some((r) => familyOf(r.modelId) === "stability") && !(STABILITY_REGIONS as readonly string[]).includes(region)) {
    out.push(`Stability AI Image Services are offered in ${STABILITY_REGIONS.join(", ")} only.`);
  }
  if (rows.some((r) => r.status !== "ACTIVE")) out.push("Legacy: new accounts cannot use it. EOL: no longer served.");
  return out.join("\n");
}
