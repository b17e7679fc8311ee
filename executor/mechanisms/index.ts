// The mechanisms by name: how the executor runs each kind of operation.
import type { Mechanism as MechName } from '../../model/plan.ts';
import type { Mechanism } from './types.ts';
import { ipMechanism, tcMechanism } from './iproute.ts';
import { bpftoolMechanism } from './bpftool.ts';
import { sysctlMechanism } from './sysctl.ts';
import { execMechanism } from './exec.ts';
import { fileMechanism } from './file.ts';
import { waitMechanism } from './wait.ts';

export const MECHANISMS: Record<MechName, Mechanism> = {
  ip: ipMechanism,
  tc: tcMechanism,
  bpftool: bpftoolMechanism,
  sysctl: sysctlMechanism,
  exec: execMechanism,
  file: fileMechanism,
  wait: waitMechanism,
};

export type { Mechanism, MechanismContext, StepOutcome } from './types.ts';
