import type { LambdaMicrovmsClient } from "@aws-sdk/client-lambda-microvms";
import type { S3Client } from "@aws-sdk/client-s3";
import { resolveConfig } from "../config/resolve.ts";
import { sdkError } from "../providers/aws-lambda-microvm/control-plane.ts";
import {
  type ControlPlaneEndpoint,
  resolveControlPlaneEndpoint,
} from "../providers/aws-lambda-microvm/endpoint.ts";

/**
 * The AWS clients of the `image` commands. Region and control-plane endpoint are resolved exactly
 * as the provider resolves them (config layers, then the endpoint policy of endpoint.ts), and the
 * emulator rule is the same: against a loopback endpoint both clients sign with fixed dummy
 * credentials and S3 goes to the emulator's own path-style S3 on that endpoint. Elsewhere the SDK's
 * standard credential chain and S3's regional endpoint (or AWS_ENDPOINT_URL_S3) apply.
 */
export interface ImageClients {
  region: string;
  endpoint: ControlPlaneEndpoint | undefined;
  emulator: boolean;
  microvms: LambdaMicrovmsClient;
  s3(): Promise<S3Client>;
  /** Runs one SDK call, turning its failure into a CrabboxError with a hint. */
  call<T>(operation: string, target: string | undefined, fn: () => Promise<T>): Promise<T>;
  close(): void;
}

const EMULATOR_CREDENTIALS = { accessKeyId: "AKIDCRABBOXEMULATOR", secretAccessKey: "emulator" };

export const IMAGE_PERMISSIONS =
  "CreateMicrovmImage, UpdateMicrovmImage, GetMicrovmImage, ListMicrovmImages, GetMicrovmImageVersion, ListMicrovmImageVersions, UpdateMicrovmImageVersion, iam:PassRole on the build role, and s3:PutObject/s3:GetObject on the artifact";

function hintFor(operation: string, code: string, emulator: boolean): string | undefined {
  if (/credential/i.test(code)) {
    return "crabbox uses the standard AWS credential chain: set AWS_PROFILE (and run `aws sso login`), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
  }
  if (code === "AccessDeniedException" || code === "AccessDenied" || code === "Forbidden") {
    return `the AWS identity needs ${IMAGE_PERMISSIONS} (docs/provider-aws-lambda-microvm.md)`;
  }
  if (code === "NoSuchBucket" || (code === "NotFound" && operation === "PutObject")) {
    return "create the bucket first, in the same region as the image (aws s3 mb s3://<bucket> --region <region>)";
  }
  if (code === "PermanentRedirect" || code === "AuthorizationHeaderMalformed") {
    return "the bucket is in another region; the artifact must be in the image's region (--aws-lambda-microvm-region)";
  }
  if (code === "ServiceQuotaExceededException") {
    return "an account has at most 100 images and 50 versions per image; delete old versions with `aws lambda-microvms delete-microvm-image-version`";
  }
  if (code === "ConflictException")
    return "the image is still building; wait for it (`crabbox image status <name>`)";
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|TimeoutError/.test(code)) {
    return emulator
      ? "is the emulator running? start it with `crabbox emulator`"
      : "check the network and the control-plane endpoint (--aws-lambda-microvm-endpoint, AWS_ENDPOINT_URL_LAMBDA_MICROVMS)";
  }
  return undefined;
}

function wrap(operation: string, target: string | undefined, error: unknown, emulator: boolean) {
  return sdkError(operation, target, error, (code) => hintFor(operation, code, emulator));
}

export interface ClientArgs {
  "aws-lambda-microvm-region"?: string;
  "aws-lambda-microvm-endpoint"?: string;
}

/** Resolves region and endpoint from config + flags and builds the clients (SDKs imported here). */
export async function imageClients(args: ClientArgs, region?: string): Promise<ImageClients> {
  const config = await resolveConfig({
    flags: {
      "aws-lambda-microvm-region": args["aws-lambda-microvm-region"],
      "aws-lambda-microvm-endpoint": args["aws-lambda-microvm-endpoint"],
    },
  });
  const configured = config.awsLambdaMicroVM.endpoint;
  const source = config.sources["awsLambdaMicroVM.endpoint"]?.source;
  const endpoint = resolveControlPlaneEndpoint({
    flag: source === "flag" ? configured : undefined,
    env: process.env,
    userConfig: source === "user" ? configured : undefined,
  });
  const emulator = endpoint?.emulator === true;
  const scope = region ?? config.aws.region;
  const sdk = await import("@aws-sdk/client-lambda-microvms");
  const microvms = new sdk.LambdaMicrovmsClient({
    region: scope,
    ...(endpoint ? { endpoint: endpoint.url } : {}),
    ...(emulator ? { credentials: EMULATOR_CREDENTIALS } : {}),
  });
  let s3: S3Client | undefined;
  return {
    region: scope,
    endpoint,
    emulator,
    microvms,
    async s3() {
      if (!s3) {
        const { S3Client } = await import("@aws-sdk/client-s3");
        s3 = new S3Client({
          region: scope,
          ...(emulator && endpoint
            ? { endpoint: endpoint.url, forcePathStyle: true, credentials: EMULATOR_CREDENTIALS }
            : {}),
        });
      }
      return s3;
    },
    async call(operation, target, fn) {
      try {
        return await fn();
      } catch (error) {
        throw wrap(operation, target, error, emulator);
      }
    },
    close() {
      microvms.destroy();
      s3?.destroy();
    },
  };
}
