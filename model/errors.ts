// Typed errors carrying a CNI error code. Anything else that escapes becomes code 999.

export const Code = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotReady: 50,
  PodsAffected: 51,
  PoolExhausted: 100,
  StepFailed: 101,
  RollbackIncomplete: 102,
  AlreadyAttached: 103,
  ModeUnavailable: 104,
  CheckFailed: 105,
  Internal: 999,
} as const;

export type CniCode = (typeof Code)[keyof typeof Code];

export class CniError extends Error {
  constructor(
    readonly code: CniCode,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }
}

export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const e = err as { message?: string; stack?: string };
  return new CniError(Code.Internal, 'internal error', String(e?.message ?? err));
}
