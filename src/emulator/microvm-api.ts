/**
 * The MicroVM operations of the control plane: Run, Get, List, Terminate, Suspend, Resume and the
 * two token mints. Validation order and wording follow reference §1.3; state rules follow §2.6.
 */
import { join } from "node:path";
import type { Emulator } from "./context.ts";
import { findImage, parseImageArn } from "./image-api.ts";
import { Microvm } from "./microvm.ts";
import { paginate } from "./pagination.ts";
import type { PortSpec } from "./tokens.ts";
import type { IdlePolicy, MicrovmState, RequestContext } from "./types.ts";
import { type Json, Violations } from "./validate.ts";
import { ApiError, compact, conflict, epochSeconds, notFound, validation } from "./wire.ts";

export interface HandlerResult {
  status: number;
  body?: unknown;
  microvmId?: string;
}

const MAX_DURATION = 28_800;
const ROLE_PATTERN = /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/?[a-zA-Z_0-9+=,.@\-_/]+$/;
const CONNECTOR_NAMES = ["ALL_INGRESS", "HTTP_INGRESS", "SHELL_INGRESS", "NO_INGRESS", "INTERNET_EGRESS"];

export function microvmNotFound(id: string): ApiError {
  return notFound("MicroVM", id, `MicroVM not found for MicroVMID: ${id}`);
}

export function findMicrovm(emu: Emulator, ctx: RequestContext): Microvm {
  const id = ctx.labels.microvmIdentifier ?? "";
  // Accept the id, or an ARN ending in it; a VM is only visible in its own Region.
  const bare = id.includes(":microvm:") ? (id.split(":microvm:")[1] ?? "") : id;
  const vm = emu.registry.vms.get(bare);
  if (!vm || vm.spec.region !== ctx.region) throw microvmNotFound(id);
  return vm;
}

/** GetMicrovm / RunMicrovm's 13 members; never the runHookPayload (AWS cannot echo it back). */
export function microvmView(emu: Emulator, vm: Microvm, op: "RunMicrovm" | "GetMicrovm", lagMs = 0) {
  const endpointFault = emu.faults.take("endpoint", op);
  return compact({
    microvmId: vm.id,
    state: lagMs > 0 ? vm.stateAt(lagMs) : vm.state,
    endpoint: endpointFault ? String(endpointFault.value) : vm.spec.endpoint,
    imageArn: vm.spec.image.arn,
    imageVersion: vm.spec.version.version,
    maximumDurationInSeconds: vm.spec.maximumDurationInSeconds,
    startedAt: epochSeconds(vm.startedAt),
    executionRoleArn: vm.spec.executionRoleArn,
    idlePolicy: vm.spec.idlePolicy,
    terminatedAt: vm.terminatedAt === undefined ? undefined : epochSeconds(vm.terminatedAt),
    stateReason: vm.stateReason,
    ingressNetworkConnectors: vm.spec.ingressNetworkConnectors,
    egressNetworkConnectors: vm.spec.egressNetworkConnectors,
  });
}

function validateConnectors(list: string[] | undefined, region: string): void {
  for (const arn of list ?? []) {
    const managed = new RegExp(
      `^arn:aws:lambda:${region}:aws:network-connector:aws-network-connector:(${CONNECTOR_NAMES.join("|")})$`,
    );
    const custom = new RegExp(`^arn:aws:lambda:${region}:[0-9]{12}:network-connector:[a-zA-Z0-9-_]+$`);
    if (!managed.test(arn) && !custom.test(arn)) throw validation("Malformed network connector ARN");
  }
}

function stringList(v: Violations, value: Json | undefined, path: string): string[] | undefined {
  const list = v.list(value, path, { max: 10 });
  if (!list) return undefined;
  return list.map(
    (item, index) => v.string(item, `${path}.${index + 1}.member`, { min: 1, max: 2048 }) ?? "",
  );
}

/** The request as compared for clientToken replays: everything but the token, in a stable order. */
export function fingerprint(body: Record<string, Json>): string {
  const { clientToken: _token, ...rest } = body;
  return stableJson(rest);
}

function stableJson(value: Json | undefined): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value)
      .filter((key) => value[key] !== null && value[key] !== undefined)
      .sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${stableJson(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export function runMicrovm(emu: Emulator, ctx: RequestContext): HandlerResult {
  const { body } = ctx;
  const v = new Violations();
  const imageIdentifier = v.string(body.imageIdentifier, "imageIdentifier", {
    required: true,
    min: 1,
    max: 256,
  });
  const imageVersion = v.string(body.imageVersion, "imageVersion", {
    min: 1,
    max: 2048,
    pattern: /^[^\s]+$/,
  });
  const ingress = stringList(v, body.ingressNetworkConnectors, "ingressNetworkConnectors");
  const egress = stringList(v, body.egressNetworkConnectors, "egressNetworkConnectors");
  const executionRoleArn = v.string(body.executionRoleArn, "executionRoleArn", {
    min: 20,
    max: 2048,
    pattern: ROLE_PATTERN,
  });
  let idlePolicy: IdlePolicy | undefined;
  const idle = v.object(body.idlePolicy, "idlePolicy");
  if (idle) {
    const maxIdle = v.integer(idle.maxIdleDurationSeconds, "idlePolicy.maxIdleDurationSeconds", {
      required: true,
      min: 60,
      max: MAX_DURATION,
    });
    const suspended = v.integer(idle.suspendedDurationSeconds, "idlePolicy.suspendedDurationSeconds", {
      required: true,
      min: 0,
      max: MAX_DURATION,
    });
    const autoResume = v.boolean(idle.autoResumeEnabled, "idlePolicy.autoResumeEnabled", { required: true });
    if (maxIdle !== undefined && suspended !== undefined && autoResume !== undefined) {
      idlePolicy = {
        maxIdleDurationSeconds: maxIdle,
        suspendedDurationSeconds: suspended,
        autoResumeEnabled: autoResume,
      };
    }
  }
  const logging = v.union(body.logging, "logging", ["disabled", "cloudWatch"]);
  if (logging?.key === "cloudWatch") {
    const cw = v.object(logging.value, "logging.cloudWatch");
    v.string(cw?.logGroup, "logging.cloudWatch.logGroup", {
      min: 1,
      max: 512,
      pattern: /^[a-zA-Z0-9_\-/.#]+$/,
    });
    v.string(cw?.logStream, "logging.cloudWatch.logStream", { min: 1, max: 512, pattern: /^[^:*]*$/ });
  }
  const runHookPayload = v.string(body.runHookPayload, "runHookPayload", { max: 4096, sensitive: true });
  const maximumDurationInSeconds = v.integer(body.maximumDurationInSeconds, "maximumDurationInSeconds", {
    min: 1,
    max: MAX_DURATION,
  });
  const clientToken = v.string(body.clientToken, "clientToken", { min: 1, max: 128 });
  v.throwIfAny();
  if (!imageIdentifier?.startsWith("arn:")) throw validation("Malformed ARN - doesn't start with 'arn:'");
  validateConnectors(ingress, ctx.region);
  validateConnectors(egress, ctx.region);

  const tokenKey = clientToken ? `${ctx.region}|RunMicrovm|${clientToken}` : undefined;
  const print = fingerprint(body);
  if (tokenKey) {
    const previous = emu.registry.idempotency.get(tokenKey);
    if (previous) {
      if (previous.fingerprint !== print) {
        throw conflict(
          `A previous RunMicrovm request with client token ${clientToken} had different parameters.`,
          "MicroVM",
          previous.result,
        );
      }
      const vm = emu.registry.vms.get(previous.result);
      if (vm) return { status: 200, body: microvmView(emu, vm, "RunMicrovm"), microvmId: vm.id };
      throw microvmNotFound(previous.result);
    }
  }

  const parsed = parseImageArn(imageIdentifier);
  const image = parsed && parsed.region === ctx.region ? findImage(emu, ctx, imageIdentifier) : undefined;
  if (!image) {
    throw notFound(
      "MicroVMImage",
      imageIdentifier,
      `MicroVMImage not found for MicroVMImageID: ${imageIdentifier}`,
    );
  }
  const runnable = image.versions.filter((ver) => ver.state === "SUCCESSFUL" && ver.status === "ACTIVE");
  let version = runnable.at(-1);
  if (imageVersion !== undefined) {
    const named = image.versions.find((ver) => ver.version === imageVersion && ver.state !== "DELETED");
    if (!named) {
      throw notFound(
        "MicroVMImageVersion",
        `${image.arn}:${imageVersion}`,
        `MicroVMImageVersion not found for MicroVMImageID: ${image.arn} and version: ${imageVersion}`,
      );
    }
    if (named.state !== "SUCCESSFUL" || named.status !== "ACTIVE") {
      throw validation(
        `MicroVM image version ${imageVersion} of ${image.arn} is not runnable: its state is ${named.state} and its status ${named.status}.`,
      );
    }
    version = named;
  }
  if (!version) throw validation(`MicroVM image ${image.arn} has no active version that built successfully.`);

  const live = [...emu.registry.vms.values()].filter((vm) => vm.state !== "TERMINATED").length;
  if (live >= emu.options.maxVms) {
    throw new ApiError(
      "ServiceQuotaExceededException",
      402,
      `You have reached the maximum number of concurrent MicroVMs (${emu.options.maxVms}).`,
      {
        members: { resourceType: "MicroVM", serviceCode: "lambda", quotaCode: "L-CRABBOX-EMULATOR-MAX-VMS" },
      },
    );
  }

  const microvmId = `microvm-${crypto.randomUUID()}`;
  const label = crypto.randomUUID();
  const vm = new Microvm(
    {
      microvmId,
      region: ctx.region,
      endpoint: `${label}.lambda-microvm.${ctx.region}.on.aws`,
      image,
      version,
      maximumDurationInSeconds: maximumDurationInSeconds ?? MAX_DURATION,
      executionRoleArn,
      idlePolicy,
      ingressNetworkConnectors: ingress,
      egressNetworkConnectors: egress,
      runHookPayload,
    },
    join(emu.paths.microvms, microvmId),
    emu.supervisor,
  );
  emu.registry.vms.set(microvmId, vm);
  emu.registry.byLabel.set(label, vm);
  if (tokenKey) emu.registry.idempotency.set(tokenKey, { fingerprint: print, result: microvmId });
  vm.start();
  return { status: 200, body: microvmView(emu, vm, "RunMicrovm"), microvmId };
}

export function getMicrovm(emu: Emulator, ctx: RequestContext): HandlerResult {
  const vm = findMicrovm(emu, ctx);
  const lag = emu.faults.take("state-lag-ms", "GetMicrovm");
  return {
    status: 200,
    body: microvmView(emu, vm, "GetMicrovm", lag ? Number(lag.value) : 0),
    microvmId: vm.id,
  };
}

export function listMicrovms(emu: Emulator, ctx: RequestContext): HandlerResult {
  const v = new Violations();
  const imageIdentifier = v.string(ctx.query.get("imageIdentifier") ?? undefined, "imageIdentifier", {
    min: 1,
    max: 256,
  });
  const imageVersion = v.string(ctx.query.get("imageVersion") ?? undefined, "imageVersion", {
    min: 1,
    max: 2048,
  });
  v.throwIfAny();
  let imageFilter: string | undefined;
  if (imageIdentifier !== undefined) {
    const image = findImage(emu, ctx, imageIdentifier);
    if (!image) {
      throw notFound(
        "MicroVMImage",
        imageIdentifier,
        `MicroVMImage not found for MicroVMImageID: ${imageIdentifier}`,
      );
    }
    imageFilter = image.arn;
  }
  const vms = [...emu.registry.vms.values()]
    .filter((vm) => vm.spec.region === ctx.region)
    .filter((vm) => imageFilter === undefined || vm.spec.image.arn === imageFilter)
    .filter((vm) => imageVersion === undefined || vm.spec.version.version === imageVersion)
    .sort((a, b) => a.startedAt - b.startedAt);
  const page = paginate(vms, ctx.query);
  const lag = emu.faults.take("state-lag-ms", "ListMicrovms");
  return {
    status: 200,
    body: compact({
      items: page.items.map((vm) => ({
        microvmId: vm.id,
        state: lag ? vm.stateAt(Number(lag.value)) : vm.state,
        imageArn: vm.spec.image.arn,
        imageVersion: vm.spec.version.version,
        startedAt: epochSeconds(vm.startedAt),
      })),
      nextToken: page.nextToken,
    }),
  };
}

export function terminateMicrovm(emu: Emulator, ctx: RequestContext): HandlerResult {
  const vm = findMicrovm(emu, ctx);
  // Idempotent on AWS: terminating a terminated VM succeeds.
  void vm.requestTerminate("MicroVM was terminated by a TerminateMicrovm request.");
  return { status: 200, body: {}, microvmId: vm.id };
}

function stateConflict(vm: Microvm, action: string): ApiError {
  return conflict(`Cannot ${action} MicroVM ${vm.id} in state ${vm.state}.`, "MicroVM", vm.id);
}

export function suspendMicrovm(emu: Emulator, ctx: RequestContext): HandlerResult {
  const vm = findMicrovm(emu, ctx);
  if (vm.requestSuspend("SuspendMicrovm") === "conflict") throw stateConflict(vm, "suspend");
  return { status: 200, body: {}, microvmId: vm.id };
}

export function resumeMicrovm(emu: Emulator, ctx: RequestContext): HandlerResult {
  const vm = findMicrovm(emu, ctx);
  const resumed = vm.requestResume();
  if (!resumed) throw stateConflict(vm, "resume");
  void resumed.catch(() => undefined);
  return { status: 200, body: {}, microvmId: vm.id };
}

const TOKEN_STATES: MicrovmState[] = ["PENDING", "RUNNING", "SUSPENDING", "SUSPENDED"];

function tokenTtlMs(emu: Emulator, minutes: number): number {
  const fault = emu.faults.take("token-ttl-s", "CreateMicrovmAuthToken");
  return fault ? Number(fault.value) * 1000 : minutes * 60_000;
}

export async function createMicrovmAuthToken(emu: Emulator, ctx: RequestContext): Promise<HandlerResult> {
  const vm = findMicrovm(emu, ctx);
  const v = new Violations();
  const minutes = v.integer(ctx.body.expirationInMinutes, "expirationInMinutes", {
    required: true,
    min: 1,
    max: 60,
  });
  const list = v.list(ctx.body.allowedPorts, "allowedPorts", { required: true, min: 1 });
  const ports: PortSpec[] = [];
  for (const [index, item] of (list ?? []).entries()) {
    const path = `allowedPorts.${index + 1}.member`;
    const spec = v.union(item, path, ["port", "range", "allPorts"]);
    if (!spec) continue;
    if (spec.key === "port") {
      const port = v.integer(spec.value, `${path}.port`, { required: true, min: 1, max: 65535 });
      if (port !== undefined) ports.push({ port });
    } else if (spec.key === "range") {
      const range = v.object(spec.value, `${path}.range`, { required: true });
      const startPort = v.integer(range?.startPort, `${path}.range.startPort`, {
        required: true,
        min: 1,
        max: 65535,
      });
      const endPort = v.integer(range?.endPort, `${path}.range.endPort`, {
        required: true,
        min: 1,
        max: 65535,
      });
      if (startPort !== undefined && endPort !== undefined) {
        if (startPort > endPort)
          v.add(`${path}.range`, "{...}", "startPort must be less than or equal to endPort");
        else ports.push({ range: { startPort, endPort } });
      }
    } else ports.push({ allPorts: {} });
  }
  v.throwIfAny();
  if (!TOKEN_STATES.includes(vm.state)) throw stateConflict(vm, "create an auth token for");
  const now = Date.now();
  const token = await emu.tokens.mint({
    sub: vm.id,
    ports,
    iat: now,
    exp: now + tokenTtlMs(emu, minutes ?? 1),
  });
  return { status: 200, body: { authToken: { "X-aws-proxy-auth": token } }, microvmId: vm.id };
}

export async function createMicrovmShellAuthToken(
  emu: Emulator,
  ctx: RequestContext,
): Promise<HandlerResult> {
  const vm = findMicrovm(emu, ctx);
  const v = new Violations();
  const minutes = v.integer(ctx.body.expirationInMinutes, "expirationInMinutes", {
    required: true,
    min: 1,
    max: 60,
  });
  v.throwIfAny();
  const ingress = (vm.spec.ingressNetworkConnectors ?? []).map((arn) => arn.split(":").at(-1));
  if (!ingress.includes("SHELL_INGRESS")) {
    throw validation(
      "Shell access requires SHELL_INGRESS network connector to be configured on the MicroVM.",
    );
  }
  if (ingress.includes("ALL_INGRESS")) {
    throw validation(
      "ALL_INGRESS cannot be combined with other ingress network connectors; use HTTP_INGRESS and/or SHELL_INGRESS instead",
    );
  }
  if (!TOKEN_STATES.includes(vm.state)) throw stateConflict(vm, "create a shell auth token for");
  const now = Date.now();
  const token = await emu.tokens.mint({
    sub: vm.id,
    ports: [],
    shell: true,
    iat: now,
    exp: now + tokenTtlMs(emu, minutes ?? 1),
  });
  return { status: 200, body: { authToken: { "X-aws-proxy-auth": token } }, microvmId: vm.id };
}
