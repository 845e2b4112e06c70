/**
 * Fault injection, off by default. A SPEC is `<fault>[@<target>][,count=N|,rate=R]`; a fault's own
 * `=<value>` runs to the first `@` or `,`. The target is a control-plane operation name
 * (`RunMicrovm`) or, for data-plane faults, a request path prefix (`/v1/exec`). Without a target a
 * fault applies wherever its kind makes sense. `count=N` fires N times in all, `rate=R` fires with
 * probability R, neither means every time.
 */

export const faultKinds = {
  throttle: { plane: "control", value: "none" },
  internal: { plane: "control", value: "none" },
  "state-lag-ms": { plane: "control", value: "number" },
  endpoint: { plane: "control", value: "string" },
  "token-ttl-s": { plane: "control", value: "number" },
  "slow-boot-ms": { plane: "control", value: "number" },
  "first-request-502": { plane: "data", value: "none" },
  "cut-stream-after": { plane: "data", value: "number" },
  "cut-upload-after": { plane: "data", value: "number" },
  redirect: { plane: "data", value: "string" },
  // Either plane: @RunMicrovm crashes the runner while it boots, a path (or nothing) on a request.
  "runner-crash": { plane: "any", value: "none" },
} as const;

export type FaultKind = keyof typeof faultKinds;

export interface Fault {
  spec: string;
  kind: FaultKind;
  value?: string | number;
  target?: string;
  count?: number;
  rate?: number;
}

export class FaultSpecError extends Error {
  override readonly name = "FaultSpecError";
}

export function parseFault(spec: string): Fault {
  const text = spec.trim();
  const head = /^([a-z0-9-]+)(?:=([^@,]*))?/.exec(text);
  if (!head) throw new FaultSpecError(`bad fault spec '${spec}'`);
  const kind = head[1] as string;
  if (!(kind in faultKinds)) {
    throw new FaultSpecError(
      `unknown fault '${kind}' in '${spec}' (one of ${Object.keys(faultKinds).join(", ")})`,
    );
  }
  const shape = faultKinds[kind as FaultKind];
  const fault: Fault = { spec: text, kind: kind as FaultKind };
  const raw = head[2];
  if (shape.value === "none" && raw !== undefined) throw new FaultSpecError(`fault '${kind}' takes no value`);
  if (shape.value !== "none") {
    if (raw === undefined || raw === "") throw new FaultSpecError(`fault '${kind}' needs =<value>`);
    if (shape.value === "number") {
      const number = Number(raw);
      if (!Number.isFinite(number) || number < 0)
        throw new FaultSpecError(`fault '${kind}': '${raw}' is not a number`);
      fault.value = number;
    } else fault.value = raw;
  }
  let rest = text.slice(head[0].length);
  const at = /^@([^,]+)/.exec(rest);
  if (at) {
    fault.target = at[1] as string;
    rest = rest.slice(at[0].length);
    const isPath = fault.target.startsWith("/");
    if (isPath && shape.plane === "control") {
      throw new FaultSpecError(`fault '${kind}' applies to control-plane operations, not paths`);
    }
    if (!isPath && shape.plane === "data") {
      throw new FaultSpecError(`fault '${kind}' applies to data-plane paths (@/path), not operations`);
    }
  }
  for (const option of rest.split(",").filter(Boolean)) {
    const [key, value] = option.split("=", 2);
    const number = Number(value);
    if (key === "count" && Number.isInteger(number) && number >= 1 && fault.rate === undefined)
      fault.count = number;
    else if (key === "rate" && number >= 0 && number <= 1 && fault.count === undefined) fault.rate = number;
    else throw new FaultSpecError(`bad option '${option}' in '${spec}' (count=N or rate=0..1, not both)`);
  }
  return fault;
}

/** The live set: counts are consumed as faults fire; replaced whole by POST /_emulator/faults. */
export class FaultSet {
  private faults: Fault[] = [];

  constructor(specs: string[] = []) {
    this.replace(specs);
  }

  replace(specs: string[]): void {
    this.faults = specs.map(parseFault);
  }

  list(): Fault[] {
    return this.faults.map((fault) => ({ ...fault }));
  }

  /**
   * The first live fault of `kind` that matches `target` and fires this time, consuming one count.
   * `target` is the operation name or the request path; `explicit` ignores untargeted faults.
   */
  take(kind: FaultKind, target: string, opts: { explicit?: boolean } = {}): Fault | undefined {
    for (const fault of this.faults) {
      if (fault.kind !== kind || !matches(fault, target)) continue;
      if (opts.explicit && fault.target === undefined) continue;
      if (fault.count !== undefined && fault.count <= 0) continue;
      if (fault.rate !== undefined && Math.random() >= fault.rate) continue;
      if (fault.count !== undefined) fault.count -= 1;
      return fault;
    }
    return undefined;
  }

  /** Whether a fault of `kind` is configured for `target` at all (without consuming it). */
  has(kind: FaultKind, target: string): boolean {
    return this.faults.some((fault) => fault.kind === kind && matches(fault, target));
  }
}

function matches(fault: Fault, target: string): boolean {
  if (fault.target === undefined) return true;
  if (fault.target.startsWith("/")) return target.startsWith(fault.target);
  return fault.target === target;
}
