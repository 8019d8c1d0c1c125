/**
 * A local stand-in for the Bedrock control plane (`@aws-sdk/client-bedrock`), the part the
 * lifecycle gate and `maskfleet models cloud` call: a node:http (HTTP/1.1) server on 127.0.0.1
 * answering REST-JSON as the service does,
 *
 *   GET /foundation-models/{modelIdentifier}             GetFoundationModel
 *   GET /foundation-model-availability/{modelId}         GetFoundationModelAvailability
 *   GET /inference-profiles/{inferenceProfileIdentifier} GetInferenceProfile
 *   GET /foundation-models?byOutputModality=IMAGE        ListFoundationModels
 *
 * Every request must be SigV4-signed for this stand-in's region and the service `bedrock`
 * (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/<date>/<region>/bedrock/aws4_request, ...`;
 * the signature itself is not checked) -> else 403 UnrecognizedClientException (no or unreadable
 * header) or InvalidSignatureException (other region or service). Errors are JSON `{"message"}`
 * with `x-amzn-ErrorType`.
 *
 * The default catalog is the one of 2026-12 (DESIGN.md "Bedrock model lifecycle"): the five
 * Stability AI Image Services ACTIVE in us-east-1, us-east-2 and us-west-2, each behind a `us.`
 * SYSTEM_DEFINED inference profile routing to those three regions; Titan v1, v2 and Nova Canvas
 * GONE (404 ResourceNotFoundException); plus a text-to-image and a text model that are no image
 * editors, so listings have something to leave out. `catalog` entries replace or add models by id.
 * Every request is recorded (time, path, operation, signing region, status).
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { BEDROCK_IMAGE_MODELS, STABILITY_REGIONS, stripProfilePrefix } from "../../src/generators/bedrock-models.js";
import { listenOnLoopback } from "./loopback.js";

export interface ControlModel {
  /** Foundation model id, e.g. "stability.stable-image-inpaint-v1:0" (no `us.` prefix). */
  modelId: string;
  /** GONE: the model reached end of life, every call naming it is a 404. */
  status: "ACTIVE" | "LEGACY" | "GONE";
  /** ISO dates for modelLifecycle. */
  legacyTime?: string;
  endOfLifeTime?: string;
  /** Default ["IMAGE"]. */
  outputModalities?: string[];
  /** Default: from the table, else the id. */
  name?: string;
  provider?: string;
  /** Regions the model is offered in (default: Stability models STABILITY_REGIONS, others everywhere). */
  regions?: string[];
  /** Served behind a `us.` SYSTEM_DEFINED inference profile in US regions (default: Stability models). */
  inferenceProfile?: boolean;
}

export type ControlOperation = "GetFoundationModel" | "GetFoundationModelAvailability" | "GetInferenceProfile" | "ListFoundationModels";

export interface ControlStandInOptions {
  /** Merged over the default catalog by modelId. */
  catalog?: ControlModel[];
  /** The region requests must be signed for and answers speak of (default us-east-1). */
  region?: string;
  /** GetFoundationModel -> 403 AccessDeniedException (shorthand for deny: ["GetFoundationModel"]). */
  denyGetFoundationModel?: boolean;
  /** These operations -> 403 AccessDeniedException. */
  deny?: ControlOperation[];
  /** Model ids whose availability says authorizationStatus NOT_AUTHORIZED. */
  notAuthorized?: string[];
}

export interface ControlRequest {
  /** Date.now() when the request arrived. */
  at: number;
  method: string;
  /** Path and query as sent. */
  path: string;
  operation?: ControlOperation;
  /** The region of the request's SigV4 credential scope, when it had one. */
  region?: string;
  status: number;
  errorType?: string;
}

export interface ControlStandIn {
  /** http://127.0.0.1:PORT, for AWS_ENDPOINT_URL_BEDROCK. */
  endpoint: string;
  requests: ControlRequest[];
  close(): Promise<void>;
}

const ACCOUNT = "111122223333";
const STARTED = "2024-09-01T00:00:00Z";

/** The catalog as of 2026-12 (see the module comment). */
export function defaultCatalog(): ControlModel[] {
  return [
    ...BEDROCK_IMAGE_MODELS.map((m): ControlModel => ({ modelId: stripProfilePrefix(m.id), status: m.family === "stability" ? "ACTIVE" : "GONE" })),
    { modelId: "stability.stable-image-ultra-v1:1", status: "ACTIVE", name: "Stable Image Ultra" },
    { modelId: "amazon.nova-pro-v1:0", status: "ACTIVE", name: "Nova Pro", outputModalities: ["TEXT"] },
  ];
}

export async function startBedrockControlStandIn(opts: ControlStandInOptions = {}): Promise<ControlStandIn> {
  const region = opts.region ?? "us-east-1";
  const deny = new Set<ControlOperation>([...(opts.deny ?? []), ...(opts.denyGetFoundationModel ? (["GetFoundationModel"] as const) : [])]);
  const notAuthorized = new Set(opts.notAuthorized ?? []);
  const catalog = new Map(defaultCatalog().map((m) => [m.modelId, m]));
  for (const m of opts.catalog ?? []) catalog.set(m.modelId, m);
  const requests: ControlRequest[] = [];

  const isStability = (m: ControlModel) => m.modelId.startsWith("stability.");
  const offered = (m: ControlModel) => m.status !== "GONE" && (m.regions ?? (isStability(m) ? [...STABILITY_REGIONS] : [region])).includes(region);
  /** A served model by id or foundation-model ARN. */
  const served = (identifier: string) => {
    const m = catalog.get(identifier.replace(/^arn:aws:bedrock:[^:]*::foundation-model\//, ""));
    return m && offered(m) ? m : undefined;
  };
  const arnOf = (modelId: string, r = region) => `arn:aws:bedrock:${r}::foundation-model/${modelId}`;

  const details = (m: ControlModel) => ({
    modelArn: arnOf(m.modelId),
    modelId: m.modelId,
    modelName: m.name ?? BEDROCK_IMAGE_MODELS.find((t) => stripProfilePrefix(t.id) === m.modelId)?.title ?? m.modelId,
    providerName: m.provider ?? (isStability(m) ? "Stability AI" : "Amazon"),
    inputModalities: ["TEXT", "IMAGE"],
    outputModalities: m.outputModalities ?? ["IMAGE"],
    responseStreamingSupported: false,
    customizationsSupported: [],
    inferenceTypesSupported: (m.inferenceProfile ?? isStability(m)) ? ["INFERENCE_PROFILE"] : ["ON_DEMAND"],
    modelLifecycle: {
      status: m.status === "GONE" ? "LEGACY" : m.status,
      startOfLifeTime: STARTED,
      ...(m.legacyTime && { legacyTime: iso(m.legacyTime) }),
      ...(m.endOfLifeTime && { endOfLifeTime: iso(m.endOfLifeTime) }),
    },
  });

  const notFound = (what: string) => ({ status: 404, type: "ResourceNotFoundException", message: `The provided ${what} identifier is invalid.` });

  /** The answer to one signed request: a JSON payload, or an error. */
  const answer = (op: ControlOperation, param: string, query: URLSearchParams): { status: number; payload: unknown } | { status: number; type: string; message: string } => {
    if (deny.has(op)) {
      return {
        status: 403,
        type: "AccessDeniedException",
        message: `User: arn:aws:iam::${ACCOUNT}:user/standin is not authorized to perform: bedrock:${op} because no identity-based policy allows the bedrock:${op} action`,
      };
    }
    switch (op) {
      case "GetFoundationModel": {
        const m = served(param);
        return m ? { status: 200, payload: { modelDetails: details(m) } } : notFound("model");
      }
      case "GetFoundationModelAvailability": {
        const m = served(param);
        if (!m) return notFound("model");
        return {
          status: 200,
          payload: {
            modelId: m.modelId,
            agreementAvailability: { status: "AVAILABLE" },
            authorizationStatus: notAuthorized.has(m.modelId) ? "NOT_AUTHORIZED" : "AUTHORIZED",
            entitlementAvailability: "AVAILABLE",
            regionAvailability: "AVAILABLE",
          },
        };
      }
      case "GetInferenceProfile": {
        const id = param.replace(/^arn:aws:bedrock:[^:]*:\d*:inference-profile\//, "");
        const m = id.startsWith("us.") && region.startsWith("us-") ? served(id.slice(3)) : undefined;
        if (!m || !(m.inferenceProfile ?? isStability(m))) return notFound("inference profile");
        const name = details(m).modelName;
        return {
          status: 200,
          payload: {
            inferenceProfileName: `US ${name}`,
            description: `Routes requests to ${name} in ${STABILITY_REGIONS.join(", ")}.`,
            createdAt: STARTED,
            updatedAt: STARTED,
            inferenceProfileArn: `arn:aws:bedrock:${region}:${ACCOUNT}:inference-profile/${id}`,
            models: STABILITY_REGIONS.map((r) => ({ modelArn: arnOf(m.modelId, r) })),
            inferenceProfileId: id,
            status: "ACTIVE",
            type: "SYSTEM_DEFINED",
          },
        };
      }
      case "ListFoundationModels": {
        const modality = query.get("byOutputModality");
        const provider = query.get("byProvider")?.toLowerCase();
        const rows = [...catalog.values()]
          .filter(offered)
          .map(details)
          .filter((d) => (!modality || d.outputModalities.includes(modality)) && (!provider || d.providerName.toLowerCase().includes(provider)));
        return { status: 200, payload: { modelSummaries: rows } };
      }
    }
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const rec: ControlRequest = { at: Date.now(), method: req.method ?? "", path: req.url ?? "", status: 0 };
    requests.push(rec);
    const reply = (status: number, payload: unknown, type?: string) => {
      rec.status = status;
      if (type) {
        rec.errorType = type;
        res.setHeader("x-amzn-ErrorType", `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`);
      }
      const text = JSON.stringify(payload);
      res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), "x-amzn-RequestId": randomUUID() });
      res.end(text);
    };
    req.resume();
    req.once("end", () => {
      const scope = /^AWS4-HMAC-SHA256 Credential=[^/\s]+\/\d{8}\/([^/\s]+)\/([^/\s]+)\/aws4_request, ?SignedHeaders=[^,\s]+, ?Signature=[0-9a-f]{64}$/.exec(
        req.headers.authorization ?? "",
      );
      if (!scope) return reply(403, { message: "The security token included in the request is invalid." }, "UnrecognizedClientException");
      rec.region = scope[1];
      if (scope[1] !== region || scope[2] !== "bedrock") {
        const message = scope[2] !== "bedrock" ? `Credential should be scoped to correct service: 'bedrock'.` : `Credential should be scoped to a valid region, not '${scope[1]}'.`;
        return reply(403, { message }, "InvalidSignatureException");
      }
      const url = new URL(req.url ?? "/", "http://standin");
      const route = routeOf(req.method ?? "", url.pathname);
      if (!route) return reply(404, { message: `No operation for ${req.method} ${url.pathname}` }, "UnknownOperationException");
      rec.operation = route.op;
      const a = answer(route.op, route.param, url.searchParams);
      if ("type" in a) return reply(a.status, { message: a.message }, a.type);
      reply(a.status, a.payload);
    });
  });

  const { endpoint, close } = await listenOnLoopback(server);
  return { endpoint, requests, close };
}

const OPERATIONS = new Map<string, ControlOperation>([
  ["foundation-models", "GetFoundationModel"],
  ["foundation-model-availability", "GetFoundationModelAvailability"],
  ["inference-profiles", "GetInferenceProfile"],
]);

function routeOf(method: string, pathname: string): { op: ControlOperation; param: string } | undefined {
  if (method !== "GET") return undefined;
  if (pathname === "/foundation-models" || pathname === "/foundation-models/") return { op: "ListFoundationModels", param: "" };
  const m = /^\/([a-z-]+)\/([^/]+)$/.exec(pathname);
  const op = m ? OPERATIONS.get(m[1] as string) : undefined;
  return m && op ? { op, param: decodeURIComponent(m[2] as string) } : undefined;
}

/** "2026-06-30" -> "2026-06-30T00:00:00Z"; full timestamps pass through. */
function iso(date: string): string {
  return /^\d{4}-\d{2}-\d{2}$/.test(date) ? `${date}T00:00:00Z` : date;
}
