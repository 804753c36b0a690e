/**
 * Who may make this agent act: the pure checks behind "an agent acts only on migrations it has taken part
 * in, and streams memory only to the target's registered address" (DESIGN.md, Trust; docs/security.md,
 * "Agents and inventory"). They hold even for a caller that is allowed to publish on the agent's subjects.
 *
 * - Entry steps (the first a role runs: the target's 2, the source's 3) need the migration's reservation
 *   in inventory for this VM and this target host: only the scheduler makes it, at step 1 (inventory tells
 *   both agents of it then, ReservationNotice; an agent without that notice asks).
 * - Every later step needs the step before it on this agent, completed, for the same VM (in order).
 * - The source streams only to the host part of the target host's registered migration address.
 * - Stop-source (8) needs the guest paused here (5) and the target agent to say it has resumed the VM (7).
 * - A compensation needs this agent's record of the step it undoes, for the same VM; one that would destroy
 *   the target's copy is refused once that copy has run (7 done, or the guest found running).
 *
 * Each function returns the refusal (a typed error) or undefined; the caller throws it.
 */
import { type AgentCompensation, ErrorCode, FlexmigError, pausedWithSyncMemory, pausedWithTransferMemory, Reservation, resumedWithTransferState, Role, StepCommand, type StepName, stepNumber, StepRecord, StepReply } from '@flexmig/contracts';
import { addressHost } from './address';

/** One ledger record with the VM it was for (the wire's StepRecord does not carry it). */
export interface LedgerRecord {
  vmId: string;
  record: StepRecord;
}

/** The roles that run each agent step. */
const rolesOfStep: Readonly<Partial<Record<StepName, readonly Role[]>>> = {
  'transfer-config': ['target'],
  'transfer-memory': ['source'],
  'sync-memory': ['source'],
  'pause-source': ['source'],
  'transfer-state': ['source', 'target'],
  'resume-target': ['target'],
  'stop-source': ['source'],
};

/** The first step each role runs: admitted against inventory's reservation, not against the ledger. */
export const ENTRY_STEP: Readonly<Record<Role, StepName>> = { source: 'transfer-memory', target: 'transfer-config' };

/** Step → the step this agent must have completed before it (same role, same migration, same VM). */
export const PREREQUISITE: Readonly<Record<Role, Readonly<Partial<Record<StepName, StepName>>>>> = {
  // stop-source: the guest paused here, not this agent's half of step 6 (which an agent killed during it never
  // finishes): the target's resume (checkTargetResumed) is what says the state arrived and the copy here is spare
  source: { 'sync-memory': 'transfer-memory', 'pause-source': 'sync-memory', 'transfer-state': 'pause-source', 'stop-source': 'pause-source' },
  target: { 'transfer-state': 'transfer-config', 'resume-target': 'transfer-state' },
};

/**
 * The steps a completed step did along with it, each as attempt 1 of that step:
 * - a source's step 3 (`transfer-memory`) whose reply says the guest is already paused (`pausedAt`: its stream
 *   reached the switchover inside step 3, HypervisorDriver.heldAtSwitchover) did step 4 (`sync-memory`), with
 *   step 3's figures and that pause time, and step 5 (`pause-source`), with the same pause time;
 * - a source's step 4 (`sync-memory`) whose reply says the guest is already paused (`pausedAt`: the driver
 *   stopped it inside step 4, HypervisorDriver.pausesAtSwitchover) did step 5 (`pause-source`), with the same
 *   pause time;
 * - a target's half of step 6 (`transfer-state`) whose reply says the guest runs (`resumedAt`: the driver
 *   started it as soon as its state had loaded, HypervisorDriver.resumesWithTransferState) did step 7
 *   (`resume-target`), with the same resume time.
 * The ledger records it with the step, so that the next step finds its prerequisite (step 6 / step 8's
 * check of the target), a compensation finds what it undoes or what forbids it, and a command of that step
 * (a scheduler that did not take it as done) gets this answer. None for every other step.
 */
export function stepDoneWith(cmd: StepCommand, reply: StepReply): StepRecord[] {
  const done = (name: StepName, role: Role, with_: Pick<StepReply, 'pausedAt' | 'resumedAt' | 'stats'>): StepRecord => {
    const step = stepNumber(name);
    return { step, role, attempt: 1, status: 'completed', reply: { migrationId: cmd.migrationId, step, attempt: 1, repeated: false, finishedAt: reply.finishedAt, ...with_ } };
  };
  if (cmd.role === 'source') {
    const pausedIn3 = pausedWithTransferMemory(cmd.stepName, reply);
    if (pausedIn3 !== undefined) {
      const stats = reply.stats === undefined ? {} : { stats: reply.stats };
      return [done('sync-memory', 'source', { ...stats, pausedAt: pausedIn3 }), done('pause-source', 'source', { pausedAt: pausedIn3 })];
    }
    const pausedAt = pausedWithSyncMemory(cmd.stepName, reply);
    if (pausedAt !== undefined) return [done('pause-source', 'source', { pausedAt })];
  }
  const resumedAt = cmd.role === 'target' ? resumedWithTransferState(cmd.stepName, reply) : undefined;
  if (resumedAt !== undefined) return [done('resume-target', 'target', { resumedAt })];
  return [];
}

/** Whether a ledger or wire record (which carries the step's number) is of step `name`. */
const isStep = (r: { step: number }, name: StepName) => r.step === stepNumber(name);

const refuse = (message: string, details: Record<string, unknown>) => new FlexmigError(ErrorCode.NotAParticipant, message, details, false);

/** The command is for this host in the role it names, and names a step that role runs. */
export function checkRoleAndHost(cmd: StepCommand, hostId: string): FlexmigError | undefined {
  const roles = rolesOfStep[cmd.stepName];
  if (!roles) return new FlexmigError(ErrorCode.ValidationFailed, `step ${cmd.step} (${cmd.stepName}) is the scheduler's, not an agent's`, { step: cmd.step }, false);
  if (!roles.includes(cmd.role)) {
    return new FlexmigError(ErrorCode.ValidationFailed, `step ${cmd.step} (${cmd.stepName}) is run by the ${roles.join(' and ')} agent, not the ${cmd.role}`, { step: cmd.step, role: cmd.role }, false);
  }
  const named = cmd.role === 'source' ? cmd.sourceHostId : cmd.targetHostId;
  if (named !== hostId || cmd.sourceHostId === cmd.targetHostId) {
    return refuse(`migration ${cmd.migrationId} names ${named} as its ${cmd.role} host (source ${cmd.sourceHostId}, target ${cmd.targetHostId}); this agent is ${hostId}`, {
      migrationId: cmd.migrationId,
      hostId,
    });
  }
  return undefined;
}

/** All of this agent's records of a migration are for one VM: a command for another VM is not this migration. */
export function checkSameVm(migrationId: string, vmId: string, history: readonly LedgerRecord[]): FlexmigError | undefined {
  const other = history.find((h) => h.vmId !== vmId);
  return other ? refuse(`migration ${migrationId} moves VM ${other.vmId} on this agent, not VM ${vmId}`, { migrationId, vmId, recordedVmId: other.vmId }) : undefined;
}

/** A later step runs only after this agent completed the step before it, for this migration and VM. */
export function checkPrerequisite(cmd: StepCommand, history: readonly LedgerRecord[]): FlexmigError | undefined {
  const sameVm = checkSameVm(cmd.migrationId, cmd.vm.id, history);
  if (sameVm) return sameVm;
  const before = PREREQUISITE[cmd.role][cmd.stepName];
  if (before === undefined) return undefined; // an entry step: checked against the reservation
  const done = history.find((h) => isStep(h.record, before) && h.record.role === cmd.role);
  if (done?.record.status === 'completed') return undefined;
  return refuse(
    `step ${cmd.step} (${cmd.stepName}) of migration ${cmd.migrationId} needs ${before} done on this ${cmd.role} agent first; ` +
      (done ? `it is ${done.record.status} here` : 'this agent has no record of it (not a migration it took part in)'),
    { migrationId: cmd.migrationId, step: cmd.step, needs: stepNumber(before), has: done?.record.status ?? null },
  );
}

/** The entry steps: inventory holds this migration's reservation, for this VM, on this migration's target. */
export function checkReservation(cmd: StepCommand, reservation: Reservation | null): FlexmigError | undefined {
  if (!reservation) {
    return refuse(`inventory holds no reservation for migration ${cmd.migrationId}: the scheduler did not start it, or it has ended`, { migrationId: cmd.migrationId });
  }
  if (reservation.vmId !== cmd.vm.id || reservation.hostId !== cmd.targetHostId) {
    return refuse(
      `migration ${cmd.migrationId} reserved host ${reservation.hostId} for VM ${reservation.vmId}; the command names host ${cmd.targetHostId} and VM ${cmd.vm.id}`,
      { migrationId: cmd.migrationId, reserved: { vmId: reservation.vmId, hostId: reservation.hostId } },
    );
  }
  return undefined;
}

/**
 * Step 3: the stream goes only to the target host's registered migration address. Only the host is
 * compared: the port is chosen by the target at run time (the kernel's free port, reported in its step-2
 * reply and handed on by the scheduler), so it cannot be known in advance; a port on the right host
 * belongs to that host's agent, which has to hold the incoming VM of this migration (checked separately).
 * Compared as written, without DNS: an agent registers the form its QEMU listens on
 * (QEMU_MIGRATION_LISTEN_HOST defaults to the host of MIGRATION_ADDRESS).
 */
export function checkIncomingAddress(cmd: StepCommand, registeredAddress: string): FlexmigError | undefined {
  // cmd.targetAddress is not checked: the caller replaces it with the registered address
  if (cmd.incomingAddress === undefined || addressHost(cmd.incomingAddress) === addressHost(registeredAddress)) return undefined;
  return new FlexmigError(
    ErrorCode.UntrustedAddress,
    `migration ${cmd.migrationId}: the incomingAddress ${cmd.incomingAddress} is not on host ${cmd.targetHostId}, whose registered migration address is ${registeredAddress}; no memory is sent there`,
    { migrationId: cmd.migrationId, incomingAddress: cmd.incomingAddress, registered: registeredAddress },
    false,
  );
}

/**
 * The source's entry step found a reservation without its host's registered migration address: an inventory
 * older than the field (`inventory.reservation.get`'s `targetMigrationAddress`). Nothing is sent anywhere:
 * agents do not read host views, so the address cannot be looked up another way.
 */
export function noRegisteredAddress(cmd: StepCommand): FlexmigError {
  return new FlexmigError(
    ErrorCode.UntrustedAddress,
    `migration ${cmd.migrationId}: inventory's answer about the reservation names no registered migration address for host ${cmd.targetHostId} (an inventory older than this agent: upgrade inventory first); no memory is sent`,
    { migrationId: cmd.migrationId, targetHostId: cmd.targetHostId },
    false,
  );
}

/** Step 8: the source copy is stopped only once the target agent says the VM runs there (step 7 done). */
export function checkTargetResumed(cmd: StepCommand, targetRecords: readonly StepRecord[]): FlexmigError | undefined {
  if (targetRecords.some((r) => isStep(r, 'resume-target') && r.role === 'target' && r.status === 'completed')) return undefined;
  return refuse(`step 8 (stop-source) of migration ${cmd.migrationId}: the target host ${cmd.targetHostId} has not resumed the VM (no completed step 7 there); the source copy stays`, {
    migrationId: cmd.migrationId,
    targetHostId: cmd.targetHostId,
  });
}

/** A compensation undoes a step this agent ran (completed, running or failed) for that VM. */
export function checkCompensation(c: { migrationId: string; stepName: StepName; role: Role; vmId: string }, history: readonly LedgerRecord[]): FlexmigError | undefined {
  const sameVm = checkSameVm(c.migrationId, c.vmId, history);
  if (sameVm) return sameVm;
  if (history.some((h) => isStep(h.record, c.stepName) && h.record.role === c.role)) return undefined;
  return refuse(`this agent has no record of ${c.stepName} (${c.role}) of migration ${c.migrationId}: there is nothing of it to undo here`, {
    migrationId: c.migrationId,
    step: stepNumber(c.stepName),
    role: c.role,
  });
}

/**
 * A compensation that destroys the target's copy (`destroy-incoming-vm`, of step 2 or 6) is refused once that
 * copy has run: this agent recorded step 7 done (on its own, or inside step 6), or the guest is found running.
 * The copy is then the VM, and the rollback must stop before it resumes the source (the saga escalates: two
 * copies that both ran are for an operator, `flexmig resolve`). Never settled by destroying.
 */
export function checkCopyNeverRan(
  c: { migrationId: string; stepName: StepName; compensation: AgentCompensation; vmId: string },
  history: readonly LedgerRecord[],
  copy: string,
): FlexmigError | undefined {
  if (c.compensation !== 'destroy-incoming-vm') return undefined;
  const resumed = history.find((h) => isStep(h.record, 'resume-target') && h.record.role === 'target' && h.record.status === 'completed');
  if (!resumed && copy !== 'running') return undefined;
  return new FlexmigError(
    ErrorCode.Conflict,
    `migration ${c.migrationId}: VM ${c.vmId} already runs on this host (${resumed ? 'step 7 done here' : 'its guest is running'}); ${c.stepName} is not undone and the source must not be resumed: resolve the migration (flexmig resolve)`,
    { migrationId: c.migrationId, vmId: c.vmId, copy },
    false,
  );
}
