/**
 * A local stand-in for Bedrock Runtime's InvokeModel, for the image-editing models maskfleet
 * uses: a node:http (HTTP/1.1) server on 127.0.0.1 speaking what the AWS SDK sends,
 * `POST /model/{urlencoded modelId}/invoke` with a JSON body.
 *
 * It VALIDATES every body against the contract of the model named in the path (DESIGN.md
 * "Contracts", from the Bedrock user guide), independently of the generator code: top-level and
 * parameter keys, types, ranges, text lengths, image and mask decode as PNG/JPEG within the
 * model's size rules, mask the image's size and pure black/white only, exactly one of
 * maskImage/maskPrompt, outPaintingMode only for OUTPAINTING, no width/height for editing.
 * Any violation -> 400 ValidationException naming the problem.
 *
 * Valid requests get one image of the request image's size, a flat colour chosen by the seed,
 * as base64 PNG. Errors are JSON `{"message": ...}` with `x-amzn-ErrorType` and the service's
 * status: 429 throttling, 400 validation, 403 access denied, 404 not found, 500 internal, 503.
 *
 * Stability AI Image Services (inpaint, search-replace, erase, outpaint, remove-background; `us.`
 * and bare ids) are served by the same server: validated and answered by ./stability.ts, with the
 * same throttling, failures, access denial, latency and cap.
 *
 * Every request is recorded (time, model, prompt, seed, status, image size and hash, User-Agent,
 * and whether the answer was fully delivered), so tests can count requests per (image, prompt,
 * seed) and compute rates. Bounded: after `maxRequests` requests (default 500) every answer is a 503.
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import sharp from "sharp";
import { listenOnLoopback } from "./loopback.js";
import { STABILITY_MODELS, buildStabilityAnswer, stabilityServiceFor, validateStabilityRequest } from "./stability.js";
import { seedColour, type RequestFacts } from "./request-facts.js";

export { seedColour, type RequestFacts } from "./request-facts.js";

export interface BedrockStandInOptions {
  /** Models served (default: Titan v1, Titan v2, Nova Canvas and every Stability id); any other -> 404 ResourceNotFoundException. */
  models?: string[];
  /** More accepted requests than this within any 1 s window -> 429 ThrottlingException. */
  throttleAbovePerSecond?: number;
  /** Sent as Retry-After (seconds) with every 429. */
  retryAfterSeconds?: number;
  /** A prompt (text; Stability: prompt or search_prompt) containing one of these (case-insensitive) is blocked by the "content filter". */
  blockPrompts?: string[];
  /** How a blocked prompt is answered (Titan/Nova): 400 ValidationException (default) or 200 with `error` set and no image. */
  blockAs?: "validation" | "response-error";
  /** How a blocked Stability prompt is answered: finish reason "Filter reason: prompt" with no image (default) or a blank one. */
  stabilityFilterAs?: "no-image" | "image";
  /** The first N valid Stability requests -> 200 with finish reason "Inference error" and no image. */
  inferenceErrorFirst?: number;
  /** The first N requests -> 500 InternalServerException. */
  failFirst?: number;
  /** Every request -> 403 AccessDeniedException. */
  denyAccess?: boolean;
  /** Delay before every answer, ms. */
  latencyMs?: number;
  /** Keep each valid request's parsed JSON body in its record. */
  recordBodies?: boolean;
  /** Safety cap on requests answered normally (default 500); past it every answer is 503. */
  maxRequests?: number;
  /** The address to listen on (default 127.0.0.1). */
  host?: string;
}

/** One request as the stand-in saw it: what it read from the body, and how it answered. */
export interface StandInRequest extends RequestFacts {
  /** Date.now() when the request arrived. */
  at: number;
  model: string;
  status: number;
  errorType?: string;
  message?: string;
  body?: unknown;
  /** The client's User-Agent (the AWS SDK's; `AWS_SDK_UA_APP_ID` adds `app/<id>` to it). */
  userAgent?: string;
  /**
   * The whole answer was handed to the client's connection ('finish' before the socket closed);
   * false while pending or when the client went away first (e.g. killed mid-request).
   */
  delivered: boolean;
  /** Date.now() when the answer finished writing. */
  deliveredAt?: number;
}

export interface BedrockStandIn {
  /** http://127.0.0.1:PORT (or the host it was started on), for `endpoints: { bedrock }`. */
  endpoint: string;
  requests: StandInRequest[];
  close(): Promise<void>;
}

interface Contract {
  family: "titan" | "nova";
  maxText: number;
  maxSeed: number;
  /** Encoded input image limit (Titan: 5 MB). */
  maxImageBytes?: number;
  /** Problem with an image size, or null. */
  size(width: number, height: number): string | null;
}

const TITAN_SIZE = (w: number, h: number): string | null => (Math.max(w, h) > 1408 ? `image ${w}x${h}: the longer side must be at most 1408 px` : null);

const NOVA_SIZE = (w: number, h: number): string | null => {
  if (w < 320 || h < 320 || w > 4096 || h > 4096) return `image ${w}x${h}: each side must be 320-4096 px`;
  if (w % 16 !== 0 || h % 16 !== 0) return `image ${w}x${h}: each side must be divisible by 16`;
  if (w > 4 * h || h > 4 * w) return `image ${w}x${h}: aspect ratio must be between 1:4 and 4:1`;
  if (w * h >= 4_194_304) return `image ${w}x${h}: must have fewer than 4194304 pixels`;
  return null;
};

export const CONTRACTS: Record<string, Contract> = {
  "amazon.titan-image-generator-v1": { family: "titan", maxText: 512, maxSeed: 2_147_483_646, maxImageBytes: 5_000_000, size: TITAN_SIZE },
  "amazon.titan-image-generator-v2:0": { family: "titan", maxText: 512, maxSeed: 2_147_483_646, maxImageBytes: 5_000_000, size: TITAN_SIZE },
  "amazon.nova-canvas-v1:0": { family: "nova", maxText: 1024, maxSeed: 858_993_459, size: NOVA_SIZE },
};

/**
 * Checks `body` against the contract of `modelId`: the problem (one line), or null when valid.
 * Exported so tests can check the validator itself.
 */
export async function validateBedrockRequest(modelId: string, body: unknown): Promise<{ problem: string | null; facts: RequestFacts }> {
  if (stabilityServiceFor(modelId)) return validateStabilityRequest(modelId, body);
  const facts: RequestFacts = {};
  const contract = CONTRACTS[modelId];
  if (!contract) return { problem: `unknown model ${modelId}`, facts };
  const problem = await check(contract, body, facts);
  return { problem, facts };
}

async function check(c: Contract, body: unknown, facts: RequestFacts): Promise<string | null> {
  if (!isObject(body)) return "the body must be a JSON object";
  const taskType = body.taskType;
  if (taskType !== "INPAINTING" && taskType !== "OUTPAINTING") {
    return `taskType must be INPAINTING or OUTPAINTING (the tasks this stand-in serves), got ${JSON.stringify(taskType)}`;
  }
  facts.taskType = taskType;
  const paramsKey = taskType === "INPAINTING" ? "inPaintingParams" : "outPaintingParams";
  const extra = Object.keys(body).filter((k) => !["taskType", paramsKey, "imageGenerationConfig"].includes(k));
  if (extra.length) return `unexpected key(s) for ${taskType}: ${extra.join(", ")}`;
  const params = body[paramsKey];
  if (!isObject(params)) return `${paramsKey} is required and must be an object`;

  const allowed = ["image", "text", "negativeText", "maskImage", "maskPrompt", ...(taskType === "OUTPAINTING" ? ["outPaintingMode"] : [])];
  const unexpected = Object.keys(params).filter((k) => !allowed.includes(k));
  if (unexpected.length) return `${paramsKey}: unexpected key(s) ${unexpected.join(", ")}`;

  for (const key of ["text", "negativeText", "maskPrompt"] as const) {
    const v = params[key];
    if (v === undefined) continue;
    if (typeof v !== "string") return `${paramsKey}.${key} must be a string`;
    const n = [...v].length;
    if (n < 1 || n > c.maxText) return `${paramsKey}.${key} must be 1-${c.maxText} characters, got ${n}`;
  }
  if (typeof params.text === "string") facts.prompt = params.text;
  if (typeof params.maskPrompt === "string") facts.maskPrompt = params.maskPrompt;
  if (taskType === "OUTPAINTING" && params.text === undefined) return `${paramsKey}.text is required for OUTPAINTING`;
  if (params.outPaintingMode !== undefined && params.outPaintingMode !== "DEFAULT" && params.outPaintingMode !== "PRECISE") {
    return `${paramsKey}.outPaintingMode must be DEFAULT or PRECISE, got ${JSON.stringify(params.outPaintingMode)}`;
  }
  const hasMask = params.maskImage !== undefined;
  const hasMaskPrompt = params.maskPrompt !== undefined;
  if (hasMask === hasMaskPrompt) return `${paramsKey}: exactly one of maskImage and maskPrompt is required (got ${hasMask ? "both" : "neither"})`;

  const config = body.imageGenerationConfig;
  if (config !== undefined) {
    if (!isObject(config)) return "imageGenerationConfig must be an object";
    const bad = Object.keys(config).filter((k) => !["numberOfImages", "quality", "cfgScale", "seed"].includes(k));
    if (bad.length) return `imageGenerationConfig: unexpected key(s) for ${taskType}: ${bad.join(", ")} (the output has the input's size)`;
    const { numberOfImages, quality, cfgScale, seed } = config;
    if (numberOfImages !== undefined && !(isInt(numberOfImages) && numberOfImages >= 1 && numberOfImages <= 5)) {
      return `imageGenerationConfig.numberOfImages must be an integer 1-5, got ${JSON.stringify(numberOfImages)}`;
    }
    if (quality !== undefined && quality !== "standard" && quality !== "premium") {
      return `imageGenerationConfig.quality must be standard or premium, got ${JSON.stringify(quality)}`;
    }
    if (cfgScale !== undefined && !(typeof cfgScale === "number" && cfgScale >= 1.1 && cfgScale <= 10)) {
      return `imageGenerationConfig.cfgScale must be a number 1.1-10, got ${JSON.stringify(cfgScale)}`;
    }
    if (seed !== undefined && !(isInt(seed) && seed >= 0 && seed <= c.maxSeed)) {
      return `imageGenerationConfig.seed must be an integer 0-${c.maxSeed}, got ${JSON.stringify(seed)}`;
    }
    if (isInt(seed)) facts.seed = seed;
  }

  const image = await readImage(params.image, `${paramsKey}.image`);
  if (typeof image === "string") return image;
  facts.width = image.width;
  facts.height = image.height;
  facts.imageHash = createHash("sha256").update(image.bytes).digest("hex").slice(0, 16);
  if (c.maxImageBytes !== undefined && image.bytes.length > c.maxImageBytes) {
    return `${paramsKey}.image is ${image.bytes.length} bytes, over the ${c.maxImageBytes} byte limit`;
  }
  const sizeProblem = c.size(image.width, image.height);
  if (sizeProblem) return `${paramsKey}.${sizeProblem}`;

  if (hasMask) {
    const mask = await readImage(params.maskImage, `${paramsKey}.maskImage`);
    if (typeof mask === "string") return mask;
    if (mask.width !== image.width || mask.height !== image.height) {
      return `${paramsKey}.maskImage is ${mask.width}x${mask.height}, the image ${image.width}x${image.height}: they must be the same size`;
    }
    const pureProblem = await checkPureBlackWhite(mask.bytes, `${paramsKey}.maskImage`);
    if (pureProblem) return pureProblem;
  }
  return null;
}

/** Decoded header of a base64 PNG/JPEG, or the problem. */
async function readImage(value: unknown, what: string): Promise<{ bytes: Buffer; width: number; height: number } | string> {
  if (typeof value !== "string" || value === "") return `${what} is required and must be a base64 string`;
  if (value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return `${what} is not valid base64`;
  const bytes = Buffer.from(value, "base64");
  try {
    const meta = await sharp(bytes, { failOn: "error" }).metadata();
    if (meta.format !== "png" && meta.format !== "jpeg") return `${what} must be PNG or JPEG, got ${meta.format}`;
    return { bytes, width: meta.width, height: meta.height };
  } catch (err) {
    return `${what} does not decode as an image (${(err as Error).message.split("\n")[0]})`;
  }
}

/** Every pixel (0,0,0) or (255,255,255), no transparency; else the problem. */
async function checkPureBlackWhite(bytes: Buffer, what: string): Promise<string | null> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 2 || info.channels === 4) return `${what} must not have an alpha channel`;
  const ch = info.channels;
  let bad = 0;
  let first = "";
  for (let i = 0; i < data.length; i += ch) {
    const v = data[i]!;
    let ok = v === 0 || v === 255;
    for (let k = 1; k < ch && ok; k++) ok = data[i + k] === v;
    if (!ok) {
      if (bad === 0) {
        const p = i / ch;
        first = ` (first at ${p % info.width},${Math.floor(p / info.width)}: ${[...data.subarray(i, i + ch)].join(",")})`;
      }
      bad++;
    }
  }
  return bad ? `${what} must contain only pure black (0,0,0) and pure white (255,255,255); ${bad} other pixel(s)${first}` : null;
}

export async function startBedrockStandIn(opts: BedrockStandInOptions = {}): Promise<BedrockStandIn> {
  const models = new Set(opts.models ?? [...Object.keys(CONTRACTS), ...STABILITY_MODELS]);
  const maxRequests = opts.maxRequests ?? 500;
  const requests: StandInRequest[] = [];
  const window: number[] = [];
  let seen = 0;
  let failed = 0;
  let inferenceErrors = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, "InternalServerException", `stand-in failure: ${(err as Error).message}`);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const match = /^\/model\/([^/]+)\/invoke$/.exec((req.url ?? "").split("?")[0]!);
    const model = match ? decodeURIComponent(match[1]!) : "";
    const rec: StandInRequest = { at, model, status: 0, delivered: false, userAgent: req.headers["user-agent"] };
    requests.push(rec);
    res.once("finish", () => {
      rec.delivered = true;
      rec.deliveredAt = Date.now();
    });
    const answer = async (status: number, type: string | null, payload: unknown): Promise<void> => {
      if (opts.latencyMs) await new Promise((r) => setTimeout(r, opts.latencyMs));
      rec.status = status;
      if (type) {
        rec.errorType = type;
        rec.message = (payload as { message: string }).message;
        sendError(res, status, type, rec.message);
      } else sendJson(res, status, payload);
    };

    const raw = await readBody(req, 64 * 1024 * 1024);
    if (++seen > maxRequests) return answer(503, "ServiceUnavailableException", { message: `stand-in request cap of ${maxRequests} reached` });
    if (req.method !== "POST" || !match) return answer(404, "UnknownOperationException", { message: `no such operation: ${req.method} ${req.url}` });
    if (raw === null) return answer(413, "ValidationException", { message: "request body too large" });
    if (!models.has(model)) {
      return answer(404, "ResourceNotFoundException", { message: `Model ${model} not found: the provided model identifier is invalid.` });
    }
    if (opts.denyAccess) return answer(403, "AccessDeniedException", { message: "You don't have access to the model with the specified model ID." });
    if (failed < (opts.failFirst ?? 0)) {
      failed++;
      return answer(500, "InternalServerException", { message: "The server encountered an internal error." });
    }
    if (opts.throttleAbovePerSecond !== undefined) {
      while (window.length && window[0]! <= at - 1000) window.shift();
      if (window.length >= opts.throttleAbovePerSecond) {
        if (opts.retryAfterSeconds !== undefined) res.setHeader("Retry-After", String(opts.retryAfterSeconds));
        return answer(429, "ThrottlingException", { message: "Too many requests, please wait before trying again." });
      }
      window.push(at);
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      return answer(400, "ValidationException", { message: "Malformed input request: the body is not JSON." });
    }
    const { problem, facts } = await validateBedrockRequest(model, body);
    Object.assign(rec, facts);
    if (problem) return answer(400, "ValidationException", { message: `Malformed input request: ${problem}` });
    if (opts.recordBodies) rec.body = body;

    if (facts.service) {
      const stabilityBody = body as Record<string, unknown>;
      if (inferenceErrors < (opts.inferenceErrorFirst ?? 0)) {
        inferenceErrors++;
        return answer(200, null, await buildStabilityAnswer(stabilityBody, rec, { reason: "Inference error", image: false }));
      }
      const texts = [facts.prompt, facts.searchPrompt].map((t) => (t ?? "").toLowerCase());
      if (opts.blockPrompts?.some((p) => texts.some((t) => t.includes(p.toLowerCase())))) {
        rec.filtered = "Filter reason: prompt";
        const finish = { reason: rec.filtered, image: opts.stabilityFilterAs === "image" };
        return answer(200, null, await buildStabilityAnswer(stabilityBody, rec, finish));
      }
      return answer(200, null, await buildStabilityAnswer(stabilityBody, rec));
    }
    const text = (facts.prompt ?? "").toLowerCase();
    if (opts.blockPrompts?.some((p) => text.includes(p.toLowerCase()))) {
      const message = "This request has been blocked by our content filters. Please adjust your text prompt to submit a new request.";
      if (opts.blockAs === "response-error") return answer(200, null, { images: [], error: message });
      return answer(400, "ValidationException", { message });
    }
    const png = await flatImage(facts.width!, facts.height!, facts.seed ?? 0);
    return answer(200, null, { images: [png.toString("base64")], error: null });
  }

  const { endpoint, close } = await listenOnLoopback(server, opts.host);
  return {
    endpoint,
    requests,
    close,
  };
}

async function flatImage(width: number, height: number, seed: number): Promise<Buffer> {
  const [r, g, b] = seedColour(seed);
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    "x-amzn-RequestId": randomUUID(),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  res.setHeader("x-amzn-ErrorType", `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`);
  sendJson(res, status, { message });
}

/** The whole body, or null when it is over `limit` bytes (the rest is drained). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  return size > limit ? null : Buffer.concat(chunks);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}
