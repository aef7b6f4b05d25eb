/**
 * The errors IaaS drivers throw, as members of cei's one hierarchy (src/errors.ts). Each carries a
 * `reason` the provisioner copies into an instance's `state_desc`, and the instance ids involved.
 * All three are retryable: the same request may succeed later unchanged.
 */
import { CeiError, type ErrorCode } from '../errors.js';

export type IaasErrorReason = 'IAAS_FULL' | 'IAAS_TIMEOUT' | 'IAAS_UNAVAILABLE';

export class IaasError extends CeiError {
  override name = 'IaasError';
  readonly reason: IaasErrorReason;
  readonly instanceIds: readonly string[];
  constructor(
    code: ErrorCode,
    reason: IaasErrorReason,
    message: string,
    instanceIds: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(code, message, { ...options, retryable: true });
    this.reason = reason;
    this.instanceIds = instanceIds;
  }
}

/** Thrown when a launch would take a site past its capacity; nothing of that launch was started. */
export class IaasFullError extends IaasError {
  override name = 'IaasFullError';
  constructor(message: string, instanceIds: readonly string[]) {
    super('RESOURCE_EXHAUSTED', 'IAAS_FULL', message, instanceIds);
  }
}

/** Thrown when the IaaS did not finish an operation in time (a process that outlives SIGKILL). */
export class IaasTimeoutError extends IaasError {
  override name = 'IaasTimeoutError';
  constructor(message: string, instanceIds: readonly string[], options?: { cause?: unknown }) {
    super('DEADLINE_EXCEEDED', 'IAAS_TIMEOUT', message, instanceIds, options);
  }
}

/** Thrown when the IaaS refused a call for a passing reason (the sim's injected API failures). */
export class IaasUnavailableError extends IaasError {
  override name = 'IaasUnavailableError';
  constructor(message: string, instanceIds: readonly string[], options?: { cause?: unknown }) {
    super('UNAVAILABLE', 'IAAS_UNAVAILABLE', message, instanceIds, options);
  }
}
