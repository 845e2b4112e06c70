/** The in-memory registry's records. */
import type { Hooks } from "@aws-sdk/client-lambda-microvms";
import type { Json, JsonObject } from "./validate.ts";

export type MicrovmState = "PENDING" | "RUNNING" | "SUSPENDING" | "SUSPENDED" | "TERMINATING" | "TERMINATED";

export type ImageState =
  | "CREATING"
  | "CREATED"
  | "CREATE_FAILED"
  | "UPDATING"
  | "UPDATED"
  | "UPDATE_FAILED"
  | "DELETING"
  | "DELETED"
  | "DELETE_FAILED";

export type VersionState = "PENDING" | "IN_PROGRESS" | "SUCCESSFUL" | "FAILED" | "DELETING" | "DELETED";

export interface IdlePolicy {
  maxIdleDurationSeconds: number;
  suspendedDurationSeconds: number;
  autoResumeEnabled: boolean;
}

/** The configuration a version was created with, echoed by the image-version operations. */
export interface ImageConfig {
  baseImageArn: string;
  buildRoleArn: string;
  codeArtifact: { uri: string };
  baseImageVersion?: string;
  description?: string;
  logging?: Json;
  egressNetworkConnectors?: string[];
  cpuConfigurations?: { architecture: string }[];
  resources?: { minimumMemoryInMiB: number }[];
  additionalOsCapabilities?: string[];
  hooks?: Hooks;
  environmentVariables?: Record<string, string>;
}

/**
 * What a version's VMs run. `host`: the CLI binary's own runner (the pre-registered image).
 * `image`: the runner found in the version's artifact, started with its Dockerfile CMD.
 */
export type Backend =
  | { kind: "host" }
  | {
      kind: "image";
      /** The unpacked artifact on the host. */
      dir: string;
      /** CMD argv with argv[0] mapped to the host path of the file COPY put there. */
      argv: string[];
      /** Emulator prefix for a foreign architecture, e.g. qemu-aarch64-static -L /usr/aarch64-linux-gnu. */
      interpreter: string[];
    };

export interface BuildRecord {
  buildId: string;
  chipsetGeneration: string;
  createdAt: number;
  snapshotBuild?: {
    memorySnapshotSizeInBytes: number;
    codeInstallSizeInBytes: number;
    diskSnapshotSizeInBytes: number;
  };
}

export interface ImageVersion {
  version: string;
  config: ImageConfig;
  state: VersionState;
  status: "ACTIVE" | "INACTIVE";
  createdAt: number;
  updatedAt: number;
  stateReason?: string;
  builds: BuildRecord[];
  backend?: Backend;
}

export interface ImageRecord {
  region: string;
  account: string;
  name: string;
  arn: string;
  state: ImageState;
  createdAt: number;
  updatedAt: number;
  tags: Record<string, string>;
  versions: ImageVersion[];
  nextMajor: number;
}

export interface RequestContext {
  region: string;
  account: string;
  requestId: string;
  /** Path labels, percent-decoded once. */
  labels: Record<string, string>;
  query: URLSearchParams;
  body: JsonObject;
}
