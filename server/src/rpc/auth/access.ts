/**
 * What one call may do: its principal, the ACL decisions and quota throttling for it. Created once
 * per call by guard.ts and found again by handlers through `accessOf(call)` (a WeakMap keyed by the
 * call object, so it lives exactly as long as the call). Without ACLs every `require` passes;
 * without quotas `throttle` and `payDebt` return undefined (callers skip the await on the hot path).
 * A principal's debt is waited out BEFORE a call moves more bytes (`payDebt`), not only after
 * (`throttle`): otherwise a new call per batch, or many in parallel, would move bytes at any rate.
 */
import type { AclTable, Operation, Resource } from "./acl.js";
import { PermissionDeniedError, QuotaWaitEndedError } from "./errors.js";
import type { QuotaKind, Quotas } from "./quota.js";

export class Access {
  constructor(
    readonly principal: string,
    private readonly acl: AclTable | undefined,
    private readonly quotas: Quotas | undefined,
    /** Aborts when the call ends (set when quotas are on): quota waits stop with the call. */
    private readonly signal?: AbortSignal,
  ) {}

  allows(resource: Resource, operation: Operation, name: string): boolean {
    return this.acl === undefined || this.acl.allows(this.principal, resource, operation, name);
  }

  /** Throws PermissionDeniedError unless an ACL grants `operation` on `name`. */
  require(resource: Resource, operation: Operation, name: string): void {
    if (this.allows(resource, operation, name)) return;
    const shown = name.length > 249 ? `${name.slice(0, 249)}…` : name;
    throw new PermissionDeniedError(
      `principal "${this.principal}" may not ${operation} ${resource} "${shown}": no entry of the broker's auth.acl.file grants it; ask its operator for one`,
    );
  }

  /**
   * Waits while this principal's `kind` quota is in debt (run up by this call or any other);
   * rejects with QuotaWaitEndedError if the call ends meanwhile, so the caller then moves nothing.
   */
  payDebt(kind: QuotaKind, signal?: AbortSignal): Promise<void> | undefined {
    const wait = this.throttle(kind, 0, signal);
    if (wait === undefined) return undefined;
    const ended = signal ?? this.signal;
    return wait.then(() => {
      if (ended?.aborted) throw new QuotaWaitEndedError("the call ended while it waited for its quota");
    });
  }

  /** Charges `bytes` to this principal's quota; a promise to await when it must slow down. */
  throttle(kind: QuotaKind, bytes: number, signal?: AbortSignal): Promise<void> | undefined {
    const q = this.quotas;
    const delay = q?.charge(kind, this.principal, bytes) ?? 0;
    return delay > 0 ? q!.pay(kind, this.principal, delay, signal ?? this.signal) : undefined;
  }
}

const byCall = new WeakMap<object, Access>();

export function setAccess(call: object, access: Access): void {
  byCall.set(call, access);
}

/** The access of a call that went through the guard; undefined when auth and quotas are off. */
export function accessOf(call: object): Access | undefined {
  return byCall.get(call);
}
