import { CrabboxError, usageError } from "../../core/errors.ts";

/**
 * Endpoint policy for both planes. The rule that matters: emulator mode is DERIVED from what the
 * user configured (a loopback control-plane endpoint), never from a server response, so a buggy or
 * hostile control plane can never point the data-plane token or the workspace upload elsewhere.
 */

export type ControlPlaneEndpointSource =
  | "flag"
  | "CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT"
  | "AWS_ENDPOINT_URL_LAMBDA_MICROVMS"
  | "AWS_ENDPOINT_URL"
  | "user-config";

export interface ControlPlaneEndpoint {
  /** Normalised origin, e.g. `http://127.0.0.1:4599` (no trailing slash). */
  url: string;
  source: ControlPlaneEndpointSource;
  /** True when the endpoint is a loopback literal: the local emulator. */
  emulator: boolean;
}

export interface ControlPlaneEndpointInputs {
  /** `--aws-lambda-microvm-endpoint`. */
  flag?: string | undefined;
  /** The process environment (only the endpoint variables are read). */
  env: Readonly<Record<string, string | undefined>>;
  /** `awsLambdaMicroVM.endpoint` from the user config file (repo files may not set it). */
  userConfig?: string | undefined;
}

const FLAG_NAME = "--aws-lambda-microvm-endpoint";

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

function describeSource(source: ControlPlaneEndpointSource): string {
  if (source === "flag") return FLAG_NAME;
  if (source === "user-config") return "awsLambdaMicroVM.endpoint in the user config";
  return source;
}

/** 127.0.0.0/8, `[::1]`, or exactly `localhost` — by literal only; nothing is resolved through DNS. */
export function isLoopbackHostname(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === "localhost" || host === "[::1]" || host === "::1") return true;
  const octets = host.split(".");
  if (octets.length !== 4 || octets[0] !== "127") return false;
  return octets.every((octet) => /^(0|[1-9][0-9]{0,2})$/.test(octet) && Number(octet) <= 255);
}

/**
 * Validates one configured control-plane endpoint. A URL with credentials, a path or a query is
 * refused (the SDK would sign requests to it), and so is plain http to anything but loopback,
 * because SigV4-signed requests must not travel in clear text.
 */
export function parseControlPlaneEndpoint(
  raw: string,
  source: ControlPlaneEndpointSource,
): ControlPlaneEndpoint {
  const where = describeSource(source);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(
      `invalid control-plane endpoint ${JSON.stringify(raw)} from ${where}`,
      "use a URL like https://lambda.eu-west-1.amazonaws.com or http://127.0.0.1:4599 for the emulator",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw usageError(`control-plane endpoint from ${where} must be http(s), got ${url.protocol}`);
  }
  if (
    url.username !== "" ||
    url.password !== "" ||
    url.search !== "" ||
    url.hash !== "" ||
    url.pathname !== "/"
  ) {
    throw usageError(
      `control-plane endpoint from ${where} must be a bare origin (no credentials, path or query)`,
      `e.g. ${url.protocol}//${url.host}`,
    );
  }
  const emulator = isLoopbackHostname(url.hostname);
  if (url.protocol === "http:" && !emulator) {
    throw usageError(
      `refusing plain http control-plane endpoint ${url.origin} from ${where}`,
      "plain http is only allowed to a loopback address (the local emulator); use https",
    );
  }
  return { url: url.origin, source, emulator };
}

/**
 * The control-plane endpoint crabbox passes to the SDK explicitly, or undefined for the SDK's
 * regional default. Order: flag, CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT, AWS_ENDPOINT_URL_LAMBDA_MICROVMS,
 * AWS_ENDPOINT_URL, user config. The AWS_* variables are skipped when
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true, as every AWS SDK does.
 */
export function resolveControlPlaneEndpoint(
  inputs: ControlPlaneEndpointInputs,
): ControlPlaneEndpoint | undefined {
  const { env } = inputs;
  const ignoreAws = nonEmpty(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS)?.toLowerCase() === "true";
  const candidates: [string | undefined, ControlPlaneEndpointSource][] = [
    [nonEmpty(inputs.flag), "flag"],
    [nonEmpty(env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT), "CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT"],
    [
      ignoreAws ? undefined : nonEmpty(env.AWS_ENDPOINT_URL_LAMBDA_MICROVMS),
      "AWS_ENDPOINT_URL_LAMBDA_MICROVMS",
    ],
    [ignoreAws ? undefined : nonEmpty(env.AWS_ENDPOINT_URL), "AWS_ENDPOINT_URL"],
    [nonEmpty(inputs.userConfig), "user-config"],
  ];
  for (const [value, source] of candidates) {
    if (value !== undefined) return parseControlPlaneEndpoint(value, source);
  }
  return undefined;
}

/**
 * Validates a MicroVM endpoint as returned by AWS (upstream `endpointURL()`): `https://` is
 * prepended when there is no scheme; then it must be https with no userinfo, port, path (not even
 * `/`) or query, and the host must end in `.lambda-microvm.<region>.on.aws`. Returns the lower-cased
 * host. Applied in emulator mode too, so the emulator must hand out real-looking endpoints.
 */
export function validateDataPlaneEndpoint(endpoint: string, region: string): string {
  const invalid = () =>
    new CrabboxError(`invalid AWS Lambda MicroVM endpoint for region ${region}`, {
      hint: "the endpoint must look like https://<id>.lambda-microvm.<region>.on.aws",
    });
  const trimmed = endpoint.trim();
  const withScheme = trimmed.includes("://") ? trimmed : `https://${trimmed}`;
  // The path must be empty, which WHATWG URL parsing hides (it reports "/" for both); check the text.
  const afterScheme = withScheme.slice(withScheme.indexOf("://") + 3);
  if (/[/?#\\]/.test(afterScheme)) throw invalid();
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw invalid();
  }
  if (url.protocol !== "https:" || url.username !== "" || url.password !== "" || url.port !== "")
    throw invalid();
  if (afterScheme.includes("@") || /:\d*$/.test(afterScheme)) throw invalid();
  const host = url.hostname.toLowerCase();
  const suffix = `.lambda-microvm.${region.toLowerCase()}.on.aws`;
  if (region.trim() === "" || !host.endsWith(suffix) || host.length === suffix.length) throw invalid();
  return host;
}

export interface DataPlaneTarget {
  /** Where the TCP connection goes. */
  protocol: "https:" | "http:";
  hostname: string;
  port: number;
  /** The Host header (and TLS server name): always the validated MicroVM endpoint host. */
  hostHeader: string;
  /** The origin requests are addressed to and redirects are compared with: `https://<hostHeader>`. */
  origin: string;
  emulator: boolean;
}

/**
 * Where data-plane requests for a MicroVM go. Production: `https://<endpoint>:443`. Emulator mode
 * (the user configured a loopback control plane): the TCP target is that loopback origin and the
 * MicroVM endpoint travels only as the Host header — nothing from the response picks the target.
 */
export function dataPlaneTarget(
  endpoint: string,
  region: string,
  controlPlane: ControlPlaneEndpoint | undefined,
): DataPlaneTarget {
  const host = validateDataPlaneEndpoint(endpoint, region);
  const origin = `https://${host}`;
  if (!controlPlane?.emulator) {
    return { protocol: "https:", hostname: host, port: 443, hostHeader: host, origin, emulator: false };
  }
  const loopback = new URL(controlPlane.url);
  const protocol = loopback.protocol === "https:" ? "https:" : "http:";
  const port = loopback.port === "" ? (protocol === "https:" ? 443 : 80) : Number(loopback.port);
  // URL keeps IPv6 literals bracketed; node:http wants them bare.
  const hostname = loopback.hostname.replace(/^\[(.*)\]$/, "$1");
  return { protocol, hostname, port, hostHeader: host, origin, emulator: true };
}
