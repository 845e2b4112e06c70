/** Everything a request handler needs: options, registry, clocks, logs, faults and tokens. */
import type { Clock } from "./clock.ts";
import type { FaultSet } from "./faults.ts";
import type { IsolationMode } from "./isolation.ts";
import type { EmulatorLog } from "./log.ts";
import type { Microvm, SupervisorContext } from "./microvm.ts";
import type { StatePaths } from "./state.ts";
import type { TokenAuthority } from "./tokens.ts";
import type { ImageRecord } from "./types.ts";

export const ACCOUNT_ID = "000000000000";

/** The Regions Lambda MicroVMs launched in; every other Region answers AccessDenied (measured). */
export const SUPPORTED_REGIONS = [
  "us-east-1",
  "us-east-2",
  "us-west-2",
  "eu-west-1",
  "ap-northeast-1",
] as const;

export interface EmulatorOptions {
  host: string;
  port: number;
  stateDir: string;
  isolation: IsolationMode;
  timeScale: number;
  maxVms: number;
  faults: string[];
  logJson?: string;
  testApi: boolean;
}

export interface Registry {
  vms: Map<string, Microvm>;
  /** Endpoint label (the opaque first DNS label) → VM. */
  byLabel: Map<string, Microvm>;
  /** Image ARN → image. */
  images: Map<string, ImageRecord>;
  /** `<region>|<operation>|<clientToken>` → the request's fingerprint and what it created. */
  idempotency: Map<string, { fingerprint: string; result: string }>;
}

export interface Emulator {
  options: EmulatorOptions;
  registry: Registry;
  clock: Clock;
  log: EmulatorLog;
  faults: FaultSet;
  tokens: TokenAuthority;
  paths: StatePaths;
  supervisor: SupervisorContext;
  /** Ids (VM markers) of image builds smoke-booting a runner right now. */
  builds: Set<string>;
}

export function imageArn(region: string, account: string, name: string): string {
  return `arn:aws:lambda:${region}:${account}:microvm-image:${name}`;
}
