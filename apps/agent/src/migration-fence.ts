/**
 * What the agent does with its copy of a VM when an operator resolves a migration
 * (agent.{hostId}.migration.fence; DESIGN.md, "The scheduler's loop": a checked way out of
 * failed-needs-attention). Pure: the handler reads the copy's state, asks this, then acts.
 *
 * - `fence`: a running copy is paused, never destroyed (a split brain is never settled by destroying); an
 *   incoming copy, which never received its state and never ran, is destroyed as the compensation of
 *   step 2 does; a paused or absent copy is left as it is.
 * - `keep`: this copy is the VM. A paused one is resumed when the scheduler says the other copy is
 *   fenced (`resume`); an incoming copy (no state) or no copy at all cannot be the VM: refused.
 */
import { ErrorCode, FenceOutcome, FlexmigError } from '@flexmig/contracts';

export type CopyState = 'running' | 'paused' | 'incoming' | 'stopped' | 'absent';
export type FenceAction = 'pause' | 'destroy' | 'resume' | 'none';

export function fenceAction(outcome: FenceOutcome, copy: CopyState, resume: boolean, vmId: string): FenceAction | FlexmigError {
  if (outcome === 'fence') {
    switch (copy) {
      case 'running':
        return 'pause';
      case 'incoming':
        return 'destroy';
      case 'paused':
      case 'stopped':
      case 'absent':
        return 'none';
    }
  }
  switch (copy) {
    case 'running':
      return 'none';
    case 'paused':
      return resume ? 'resume' : 'none';
    case 'incoming':
      return new FlexmigError(ErrorCode.Conflict, `the copy of VM ${vmId} on this host is an incoming one that never received its state: it cannot be kept as the VM`, { vmId, copy }, false);
    case 'stopped':
    case 'absent':
      return new FlexmigError(ErrorCode.NotFound, `this host has no ${copy === 'stopped' ? 'live ' : ''}copy of VM ${vmId}: it cannot be kept as the VM`, { vmId, copy }, false);
  }
}

/** What the reply says was done. */
export const fenceActionDone: Readonly<Record<FenceAction, 'paused' | 'destroyed' | 'resumed' | 'none'>> = { pause: 'paused', destroy: 'destroyed', resume: 'resumed', none: 'none' };
