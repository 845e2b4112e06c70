/**
 * The control-plane router: the restJson1 route table of reference §1.2, the caller's Region from
 * the SigV4 credential scope, injected throttling/internal faults, and the one place handlers'
 * results and ApiErrors become wire responses.
 */
import { ACCOUNT_ID, type Emulator, SUPPORTED_REGIONS } from "./context.ts";
import * as images from "./image-api.ts";
import type { HandlerResult } from "./microvm-api.ts";
import * as microvms from "./microvm-api.ts";
import type { RequestContext } from "./types.ts";
import { parseBody } from "./validate.ts";
import { ApiError, accessDenied, errorResponse, jsonResponse, requestId } from "./wire.ts";

type Handler = (emu: Emulator, ctx: RequestContext) => HandlerResult | Promise<HandlerResult>;

interface Route {
  method: string;
  op: string;
  segments: string[];
  handler: Handler;
}

const table: [string, string, string, Handler][] = [
  ["POST", "/2025-09-09/microvms", "RunMicrovm", microvms.runMicrovm],
  ["GET", "/2025-09-09/microvms", "ListMicrovms", microvms.listMicrovms],
  ["GET", "/2025-09-09/microvms/{microvmIdentifier}", "GetMicrovm", microvms.getMicrovm],
  ["DELETE", "/2025-09-09/microvms/{microvmIdentifier}", "TerminateMicrovm", microvms.terminateMicrovm],
  ["POST", "/2025-09-09/microvms/{microvmIdentifier}/suspend", "SuspendMicrovm", microvms.suspendMicrovm],
  ["POST", "/2025-09-09/microvms/{microvmIdentifier}/resume", "ResumeMicrovm", microvms.resumeMicrovm],
  [
    "POST",
    "/2025-09-09/microvms/{microvmIdentifier}/auth-token",
    "CreateMicrovmAuthToken",
    microvms.createMicrovmAuthToken,
  ],
  [
    "POST",
    "/2025-09-09/microvms/{microvmIdentifier}/shell-auth-token",
    "CreateMicrovmShellAuthToken",
    microvms.createMicrovmShellAuthToken,
  ],
  ["POST", "/2025-09-09/microvm-images", "CreateMicrovmImage", images.createMicrovmImage],
  ["GET", "/2025-09-09/microvm-images", "ListMicrovmImages", images.listMicrovmImages],
  ["GET", "/2025-09-09/microvm-images/{imageIdentifier}", "GetMicrovmImage", images.getMicrovmImage],
  ["PUT", "/2025-09-09/microvm-images/{imageIdentifier}", "UpdateMicrovmImage", images.updateMicrovmImage],
  ["DELETE", "/2025-09-09/microvm-images/{imageIdentifier}", "DeleteMicrovmImage", images.deleteMicrovmImage],
  [
    "GET",
    "/2025-09-09/microvm-images/{imageIdentifier}/versions",
    "ListMicrovmImageVersions",
    images.listMicrovmImageVersions,
  ],
  [
    "GET",
    "/2025-09-09/microvm-images/{imageIdentifier}/versions/{imageVersion}",
    "GetMicrovmImageVersion",
    images.getMicrovmImageVersion,
  ],
  [
    "PATCH",
    "/2025-09-09/microvm-images/{imageIdentifier}/versions/{imageVersion}",
    "UpdateMicrovmImageVersion",
    images.updateMicrovmImageVersion,
  ],
  [
    "DELETE",
    "/2025-09-09/microvm-images/{imageIdentifier}/versions/{imageVersion}",
    "DeleteMicrovmImageVersion",
    images.deleteMicrovmImageVersion,
  ],
  [
    "GET",
    "/2025-09-09/microvm-images/{imageIdentifier}/versions/{imageVersion}/builds",
    "ListMicrovmImageBuilds",
    images.listMicrovmImageBuilds,
  ],
  [
    "GET",
    "/2025-09-09/microvm-images/{imageIdentifier}/versions/{imageVersion}/builds/{buildId}",
    "GetMicrovmImageBuild",
    images.getMicrovmImageBuild,
  ],
  ["GET", "/2025-09-09/managed-microvm-images", "ListManagedMicrovmImages", images.listManagedMicrovmImages],
  [
    "GET",
    "/2025-09-09/managed-microvm-images/{imageIdentifier}/versions",
    "ListManagedMicrovmImageVersions",
    images.listManagedMicrovmImageVersions,
  ],
  ["POST", "/2017-03-31/tags/{Resource}", "TagResource", images.tagResource],
  ["DELETE", "/2017-03-31/tags/{Resource}", "UntagResource", images.untagResource],
  ["GET", "/2017-03-31/tags/{Resource}", "ListTags", images.listTags],
];

const routes: Route[] = table.map(([method, template, op, handler]) => ({
  method,
  op,
  segments: template.split("/").slice(1),
  handler,
}));

function match(
  method: string,
  pathname: string,
): { route?: Route; labels: Record<string, string>; known: boolean } {
  const parts = pathname.split("/").slice(1);
  let known = false;
  for (const route of routes) {
    if (route.segments.length !== parts.length) continue;
    const labels: Record<string, string> = {};
    const ok = route.segments.every((segment, index) => {
      const part = parts[index] as string;
      if (segment.startsWith("{")) {
        if (part === "") return false;
        try {
          labels[segment.slice(1, -1)] = decodeURIComponent(part);
        } catch {
          return false;
        }
        return true;
      }
      return segment === part;
    });
    if (!ok) continue;
    known = true;
    if (route.method === method) return { route, labels, known };
  }
  return { labels: {}, known };
}

/** The Region from `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request`. */
export function signingRegion(authorization: string | null): string | undefined {
  const match = /Credential=[^/,\s]+\/\d{8}\/([a-z0-9-]+)\/[a-z0-9-]+\/aws4_request/.exec(
    authorization ?? "",
  );
  return match?.[1];
}

export interface ControlResult {
  response: Response;
  op?: string;
  microvmId?: string;
  bytesIn: number;
}

export async function handleControl(emu: Emulator, req: Request, url: URL): Promise<ControlResult> {
  const id = requestId();
  const { route, labels, known } = match(req.method, url.pathname);
  const text = req.method === "GET" || req.method === "HEAD" ? "" : await req.text();
  const bytesIn = Buffer.byteLength(text);
  if (!route) {
    const error = new ApiError(
      "UnknownOperationException",
      known ? 405 : 404,
      known ? `Method ${req.method} is not allowed on ${url.pathname}` : `No operation at ${url.pathname}`,
    );
    return { response: errorResponse(error, id), bytesIn };
  }
  const op = route.op;
  try {
    const region = signingRegion(req.headers.get("authorization"));
    if (!region)
      throw accessDenied("Request is missing a valid AWS Signature Version 4 Authorization header.");
    // Unsupported Regions answer AccessDenied with no message at all (measured on AWS).
    if (!(SUPPORTED_REGIONS as readonly string[]).includes(region)) throw accessDenied();
    if (emu.faults.take("throttle", op)) {
      throw new ApiError("ThrottlingException", 429, "Rate exceeded", {
        retryAfter: 1,
        members: { serviceCode: "lambda", quotaCode: `${op}-tps` },
      });
    }
    if (emu.faults.take("internal", op)) {
      throw new ApiError(
        "InternalServerException",
        500,
        "An internal error occurred (injected by the emulator).",
      );
    }
    const ctx: RequestContext = {
      region,
      account: ACCOUNT_ID,
      requestId: id,
      labels,
      query: url.searchParams,
      body: parseBody(text),
    };
    const result = await route.handler(emu, ctx);
    const response =
      result.status === 204 ? jsonResponse(204, undefined, id) : jsonResponse(result.status, result.body, id);
    const microvmId = result.microvmId ?? labels.microvmIdentifier;
    return { response, op, bytesIn, ...(microvmId ? { microvmId } : {}) };
  } catch (error) {
    const microvmId = labels.microvmIdentifier;
    if (error instanceof ApiError) {
      return { response: errorResponse(error, id), op, bytesIn, ...(microvmId ? { microvmId } : {}) };
    }
    emu.log.note(
      `[control] ${op} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    const internal = new ApiError(
      "InternalServerException",
      500,
      "The emulator failed to process the request.",
    );
    return { response: errorResponse(internal, id), op, bytesIn };
  }
}
