/**
 * The Bedrock Runtime client of the generate stage and the one place where its errors get their
 * meaning for the queue.
 *
 * - HTTP/1.1 (`NodeHttpHandler`): the SDK's default for bedrock-runtime is HTTP/2, which the local
 *   stand-ins and some proxies do not speak; InvokeModel gains nothing from HTTP/2.
 * - One attempt per call (`maxAttempts: 1`): retries belong to the queue, which also pauses the
 *   whole generate pool on throttling instead of every worker retrying on its own.
 * - A long request timeout (default 300 s): image models can take minutes under load.
 *
 * Error mapping (by the service's error name, `x-amzn-ErrorType`):
 * - ThrottlingException, ModelNotReadyException, ServiceQuotaExceededException -> ThrottledError
 *   (retryAfterMs from a Retry-After header when the service sends one)
 * - ValidationException (bad request, or "blocked by our content filters") -> RejectedError
 * - AccessDeniedException, ResourceNotFoundException, UnrecognizedClientException,
 *   InvalidSignatureException, missing credentials -> FatalServiceError (one line: model, region)
 * - everything else (ModelTimeoutException, InternalServerException, ServiceUnavailableException,
 *   ModelErrorException, network errors, timeouts) -> a plain Error: transient, retried.
 */
import { BedrockRuntimeClient, InvokeModelCommand } from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { awsClientConfig, type AwsSettings } from "../runtime/aws.js";
import { ConfigError, FatalServiceError, RejectedError, ThrottledError } from "../runtime/errors.js";

export interface BedrockGeneratorOptions {
  /** close() destroys the client (default true: the generator was given its own client). */
  ownsClient?: boolean;
}

/** Default limit for one InvokeModel call, request and response together. */
export const DEFAULT_BEDROCK_TIMEOUT_MS = 300_000;

export interface BedrockClientOptions {
  /** Limit for one call, request and response together, in ms (default 300 000). */
  timeoutMs?: number;
}

/** A BedrockRuntimeClient for `aws` (region, profile, endpoint override) speaking HTTP/1.1, one attempt per call. */
export function createBedrockClient(aws: AwsSettings, opts: BedrockClientOptions = {}): BedrockRuntimeClient {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_BEDROCK_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new ConfigError("timeoutMs", `must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  return new BedrockRuntimeClient({
    ...awsClientConfig(aws, "bedrock"),
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: Math.min(timeoutMs, 10_000),
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: timeoutMs,
    }),
  });
}

/**
 * InvokeModel with a JSON body; resolves to the parsed JSON response. Every failure is one of the
 * error classes above (see the module comment).
 */
export async function invokeModelJson(client: BedrockRuntimeClient, modelId: string, body: unknown): Promise<unknown> {
  let text: string;
  try {
    const res = await client.send(new InvokeModelCommand({ modelId, body: JSON.stringify(body), contentType: "application/json", accept: "application/json" }));
    text = Buffer.from(res.body ?? new Uint8Array()).toString("utf8");
  } catch (err) {
    throw mapBedrockError(err, modelId, await regionOf(client));
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`Bedrock ${modelId}: response is not JSON (${text.length} bytes starting ${JSON.stringify(text.slice(0, 60))})`, { cause: err });
  }
}

const THROTTLED = new Set(["ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException"]);
const REJECTED = new Set(["ValidationException"]);
const FATAL = new Set(["AccessDeniedException", "ResourceNotFoundException", "UnrecognizedClientException", "InvalidSignatureException", "CredentialsProviderError"]);

/** What an error from the SDK means for the queue (see the module comment). Exported for tests. */
export function mapBedrockError(err: unknown, modelId: string, region: string): Error {
  const e = (err ?? {}) as { name?: unknown; message?: unknown; $metadata?: unknown; $response?: { headers?: Record<string, string | undefined> } };
  const name = typeof e.name === "string" ? e.name : "Error";
  const message = firstLine(typeof e.message === "string" && e.message ? e.message : String(err));
  const where = `Bedrock model ${modelId} in ${region}`;
  if (THROTTLED.has(name)) {
    return new ThrottledError(`${where} is throttling (${name}: ${message})`, retryAfterMs(e.$response?.headers), { cause: err });
  }
  if (REJECTED.has(name)) return new RejectedError(`${where} refused the request: ${message}`, { cause: err });
  if (FATAL.has(name)) {
    const hint =
      name === "ResourceNotFoundException"
        ? "check the model id and that the model is offered in this region"
        : name === "CredentialsProviderError"
          ? "no usable AWS credentials"
          : "check the credentials and that model access is granted to them";
    return new FatalServiceError(`${where}: ${name}: ${message} (${hint})`, { cause: err });
  }
  return new Error(`${where}: ${name}: ${message}`, { cause: err });
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(headers: Record<string, string | undefined> | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === "retry-after");
  const value = key === undefined ? undefined : headers[key]?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

async function regionOf(client: BedrockRuntimeClient): Promise<string> {
  try {
    return await client.config.region();
  } catch {
    return "an unknown region";
  }
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.trim();
}

/** The first image of a Titan/Nova response; RejectedError when moderation blocked it or none came back. */
export function firstImage(response: unknown, modelId: string): string {
  if (typeof response !== "object" || response === null) throw new Error(`${modelId}: unexpected response (${typeof response})`);
  const { images, error } = response as { images?: unknown; error?: unknown };
  if (typeof error === "string" && error !== "") throw new RejectedError(`${modelId} returned no image: ${error}`);
  if (!Array.isArray(images) || images.length === 0) throw new RejectedError(`${modelId} returned no image (no reason given)`);
  const first: unknown = images[0];
  if (typeof first !== "string" || first === "") throw new Error(`${modelId}: unexpected response (images[0] is not a base64 string)`);
  return first;
}
