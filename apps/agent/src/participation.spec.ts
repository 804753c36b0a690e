import { randomUUID } from 'node:crypto';
import { ErrorCode, MigrationPolicySchema, Reservation, StepCommand, StepRecord, stepName } from '@flexmig/contracts';
import {
  LedgerRecord,
  checkCompensation,
  checkCopyNeverRan,
  checkIncomingAddress,
  checkPrerequisite,
  checkReservation,
  checkRoleAndHost,
  checkTargetResumed,
  stepDoneWith,
} from './participation';
import { addressHost } from './address';

const migrationId = randomUUID();
const vm = { id: randomUUID(), name: 'vm1', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
const cmd = (step: number, role: 'source' | 'target', extra: Partial<StepCommand> = {}): StepCommand => ({
  migrationId,
  step,
  stepName: stepName(step),
  attempt: 1,
  role,
  vm,
  sourceHostId: 'src',
  targetHostId: 'dst',
  policy: MigrationPolicySchema.parse({}),
  ...extra,
});
const rec = (step: number, role: 'source' | 'target', status: StepRecord['status'] = 'completed', vmId = vm.id): LedgerRecord => ({ vmId, record: { step, role, attempt: 1, status } });
/** A step recorded as done with another: attempt 1, completed, with what it carries (stepDoneWith). */
const doneRecord = (step: number, role: 'source' | 'target', finishedAt: string, carries: Record<string, unknown>): StepRecord => ({
  step,
  role,
  attempt: 1,
  status: 'completed',
  reply: { migrationId, step, attempt: 1, repeated: false, finishedAt, ...carries },
});
const reservation = (over: Partial<Reservation> = {}): Reservation => ({ migrationId, vmId: vm.id, hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date().toISOString(), ...over });

describe('participation checks (an agent acts only on migrations it took part in)', () => {
  describe('stepDoneWith (a step 4 that ended with the guest paused did step 5)', () => {
    const reply = (step: number, pausedAt?: string) => ({ migrationId, step, attempt: 1, repeated: false, finishedAt: '2026-12-01T17:00:01.000Z', ...(pausedAt ? { pausedAt } : {}) });
    it('given step 4 on the source with pausedAt, then step 5 completed, attempt 1, with that pause; and step 6 then passes its prerequisite', () => {
      const [five, ...more] = stepDoneWith(cmd(4, 'source'), reply(4, '2026-12-01T17:00:00.000Z'));
      expect(more).toEqual([]);
      expect(five).toEqual(doneRecord(5, 'source', '2026-12-01T17:00:01.000Z', { pausedAt: '2026-12-01T17:00:00.000Z' }));
      expect(checkPrerequisite(cmd(6, 'source'), [rec(3, 'source'), rec(4, 'source'), { vmId: vm.id, record: five! }])).toBeUndefined();
      expect(checkCompensation({ migrationId, stepName: 'pause-source', role: 'source', vmId: vm.id }, [{ vmId: vm.id, record: five! }])).toBeUndefined();
    });
    it('given step 4 without pausedAt, steps 5 and 6 with one, or a target, then nothing', () => {
      expect(stepDoneWith(cmd(4, 'source'), reply(4))).toEqual([]);
      expect(stepDoneWith(cmd(5, 'source'), reply(5, '2026-12-01T17:00:00.000Z'))).toEqual([]);
      expect(stepDoneWith(cmd(6, 'target'), reply(6, '2026-12-01T17:00:00.000Z'))).toEqual([]);
      expect(stepDoneWith(cmd(4, 'target'), reply(4, '2026-12-01T17:00:00.000Z'))).toEqual([]);
    });
  });

  describe('stepDoneWith (a step 3 that ended with the guest paused did steps 4 and 5)', () => {
    const PAUSED = '2026-12-07T13:30:00.000Z';
    const stats = { passes: 1, bytesTransferred: 1_048_576, remainingBytes: 4096, downtimeMs: 0 };
    const reply = (pausedAt?: string) => ({ migrationId, step: 3, attempt: 2, repeated: false, finishedAt: '2026-12-07T13:30:00.002Z', stats, ...(pausedAt ? { pausedAt } : {}) });
    it("given step 3 on the source with pausedAt, then step 4 (with step 3's figures) and step 5 completed, attempt 1 each, with that pause; steps 5 and 6 then pass their prerequisites, and each can be compensated", () => {
      const [four, five, ...more] = stepDoneWith(cmd(3, 'source', { attempt: 2 }), reply(PAUSED));
      expect(more).toEqual([]);
      expect(four).toEqual(doneRecord(4, 'source', '2026-12-07T13:30:00.002Z', { stats, pausedAt: PAUSED }));
      expect(five).toEqual(doneRecord(5, 'source', '2026-12-07T13:30:00.002Z', { pausedAt: PAUSED }));
      const history = [rec(3, 'source'), { vmId: vm.id, record: four! }, { vmId: vm.id, record: five! }];
      expect(checkPrerequisite(cmd(5, 'source'), history)).toBeUndefined();
      expect(checkPrerequisite(cmd(6, 'source'), history)).toBeUndefined();
      expect(checkCompensation({ migrationId, stepName: 'sync-memory', role: 'source', vmId: vm.id }, history)).toBeUndefined();
      expect(checkCompensation({ migrationId, stepName: 'pause-source', role: 'source', vmId: vm.id }, history)).toBeUndefined();
    });
    it('given step 3 without pausedAt, or on a target, then nothing', () => {
      expect(stepDoneWith(cmd(3, 'source'), reply())).toEqual([]);
      expect(stepDoneWith(cmd(3, 'target'), reply(PAUSED))).toEqual([]);
    });
  });

  describe("stepDoneWith (a target's half of step 6 that started the guest did step 7)", () => {
    const RESUMED = '2026-12-03T12:00:00.000Z';
    const reply = (step: number, resumedAt?: string) => ({ migrationId, step, attempt: 2, repeated: false, finishedAt: '2026-12-03T12:00:00.004Z', ...(resumedAt ? { resumedAt } : {}) });
    it('given the target half of step 6 with resumedAt, then step 7 completed, attempt 1, with that resume; stop-source then sees the target resumed', () => {
      const [seven, ...more] = stepDoneWith(cmd(6, 'target', { attempt: 2 }), reply(6, RESUMED));
      expect(more).toEqual([]);
      expect(seven).toEqual(doneRecord(7, 'target', '2026-12-03T12:00:00.004Z', { resumedAt: RESUMED }));
      expect(checkTargetResumed(cmd(8, 'source'), [{ step: 6, role: 'target', attempt: 2, status: 'completed' }, seven!])).toBeUndefined();
    });
    it('given step 6 without resumedAt, the source half, or another target step with one, then nothing', () => {
      expect(stepDoneWith(cmd(6, 'target'), reply(6))).toEqual([]);
      expect(stepDoneWith(cmd(6, 'source'), reply(6, RESUMED))).toEqual([]);
      expect(stepDoneWith(cmd(2, 'target'), reply(2, RESUMED))).toEqual([]);
      expect(stepDoneWith(cmd(7, 'target'), reply(7, RESUMED))).toEqual([]);
    });
  });

  describe("checkCopyNeverRan (a target's copy that ran is never destroyed by a compensation)", () => {
    const undo = (stepName: 'transfer-config' | 'transfer-state', compensation: 'destroy-incoming-vm' | 'resume-source' = 'destroy-incoming-vm') => ({ migrationId, stepName, compensation, vmId: vm.id });
    it('given a copy that never ran (incoming, paused, absent) and no step 7 here, then the destroy goes ahead', () => {
      for (const copy of ['incoming', 'paused', 'absent', 'stopped']) {
        expect(checkCopyNeverRan(undo('transfer-state'), [rec(2, 'target'), rec(6, 'target')], copy)).toBeUndefined();
        expect(checkCopyNeverRan(undo('transfer-config'), [rec(2, 'target')], copy)).toBeUndefined();
      }
    });
    it('given step 7 done here, or the guest found running, then CONFLICT, not retryable, naming the way out', () => {
      const afterResume = checkCopyNeverRan(undo('transfer-state'), [rec(2, 'target'), rec(6, 'target'), rec(7, 'target')], 'paused');
      expect(afterResume).toMatchObject({ code: ErrorCode.Conflict, retryable: false });
      expect(afterResume?.message).toMatch(/step 7 done here.*must not be resumed.*flexmig resolve/);
      expect(checkCopyNeverRan(undo('transfer-state'), [rec(2, 'target'), rec(6, 'target', 'failed')], 'running')?.message).toMatch(/its guest is running/);
      expect(checkCopyNeverRan(undo('transfer-config'), [rec(2, 'target')], 'running')?.code).toBe(ErrorCode.Conflict);
    });
    it("given a step 7 that failed, or another compensation (the source's resume), then it does not decide", () => {
      expect(checkCopyNeverRan(undo('transfer-state'), [rec(6, 'target'), rec(7, 'target', 'failed')], 'paused')).toBeUndefined();
      expect(checkCopyNeverRan(undo('transfer-state', 'resume-source'), [rec(7, 'target')], 'running')).toBeUndefined();
    });
  });

  describe('checkRoleAndHost', () => {
    it('given a command for this host in its role, when checked, then it passes', () => {
      expect(checkRoleAndHost(cmd(3, 'source'), 'src')).toBeUndefined();
      expect(checkRoleAndHost(cmd(2, 'target'), 'dst')).toBeUndefined();
      expect(checkRoleAndHost(cmd(6, 'target'), 'dst')).toBeUndefined();
    });
    it('given a command naming another host for this role, then NOT_A_PARTICIPANT', () => {
      expect(checkRoleAndHost(cmd(8, 'source', { sourceHostId: 'elsewhere' }), 'src')?.code).toBe(ErrorCode.NotAParticipant);
      expect(checkRoleAndHost(cmd(8, 'source', { targetHostId: 'src' }), 'src')?.code).toBe(ErrorCode.NotAParticipant);
    });
    it('given a step its role does not run, then VALIDATION_FAILED (before anything is recorded)', () => {
      expect(checkRoleAndHost(cmd(8, 'target'), 'dst')?.code).toBe(ErrorCode.ValidationFailed);
      expect(checkRoleAndHost(cmd(1, 'source'), 'src')?.code).toBe(ErrorCode.ValidationFailed);
    });
  });

  describe('checkPrerequisite', () => {
    it('given the forged stop-source of a made-up migration (no record here), then NOT_A_PARTICIPANT', () => {
      const e = checkPrerequisite(cmd(8, 'source'), []);
      expect(e?.code).toBe(ErrorCode.NotAParticipant);
      expect(e?.message).toMatch(/needs pause-source done on this source agent first; this agent has no record of it/);
    });
    it('given the steps in order on the source, then each passes only after the one before completed', () => {
      expect(checkPrerequisite(cmd(4, 'source'), [rec(3, 'source')])).toBeUndefined();
      expect(checkPrerequisite(cmd(5, 'source'), [rec(3, 'source'), rec(4, 'source')])).toBeUndefined();
      expect(checkPrerequisite(cmd(6, 'source'), [rec(3, 'source'), rec(4, 'source'), rec(5, 'source')])).toBeUndefined();
      expect(checkPrerequisite(cmd(8, 'source'), [rec(3, 'source'), rec(4, 'source'), rec(5, 'source'), rec(6, 'source')])).toBeUndefined();
      expect(checkPrerequisite(cmd(5, 'source'), [rec(3, 'source')])?.code).toBe(ErrorCode.NotAParticipant);
    });
    it("given stop-source after a source half of step 6 that never finished (the agent died in it), then the pause is enough: the target's resume decides (checkTargetResumed)", () => {
      expect(checkPrerequisite(cmd(8, 'source'), [rec(3, 'source'), rec(4, 'source'), rec(5, 'source'), rec(6, 'source', 'failed')])).toBeUndefined();
      expect(checkPrerequisite(cmd(8, 'source'), [rec(3, 'source'), rec(4, 'source')])?.code).toBe(ErrorCode.NotAParticipant);
    });
    it('given a step before it that failed or was compensated, then refused, naming its status', () => {
      expect(checkPrerequisite(cmd(4, 'source'), [rec(3, 'source', 'failed')])?.message).toMatch(/it is failed here/);
      expect(checkPrerequisite(cmd(6, 'source'), [rec(5, 'source', 'compensated')])?.message).toMatch(/it is compensated here/);
    });
    it('given the target: 6 after its 2, 7 after its 6; a source record does not count for the target', () => {
      expect(checkPrerequisite(cmd(6, 'target'), [rec(2, 'target')])).toBeUndefined();
      expect(checkPrerequisite(cmd(7, 'target'), [rec(2, 'target'), rec(6, 'target')])).toBeUndefined();
      expect(checkPrerequisite(cmd(7, 'target'), [rec(2, 'target'), rec(6, 'source')])?.code).toBe(ErrorCode.NotAParticipant);
    });
    it('given records of this migration for another VM, then the command is not this migration', () => {
      expect(checkPrerequisite(cmd(4, 'source'), [rec(3, 'source', 'completed', randomUUID())])?.message).toMatch(/moves VM .* not VM/);
    });
    it('given an entry step (source 3, target 2), then the ledger does not decide (the reservation does)', () => {
      expect(checkPrerequisite(cmd(3, 'source'), [])).toBeUndefined();
      expect(checkPrerequisite(cmd(2, 'target'), [])).toBeUndefined();
    });
  });

  describe('checkReservation', () => {
    it('given the reservation of this migration, VM and target, then it passes', () => {
      expect(checkReservation(cmd(3, 'source'), reservation())).toBeUndefined();
    });
    it('given no reservation (a migration the scheduler never started), then NOT_A_PARTICIPANT', () => {
      expect(checkReservation(cmd(2, 'target'), null)?.code).toBe(ErrorCode.NotAParticipant);
    });
    it('given a reservation for another VM or host, then refused, naming both', () => {
      expect(checkReservation(cmd(3, 'source'), reservation({ hostId: 'other' }))?.message).toMatch(/reserved host other .* names host dst/);
      expect(checkReservation(cmd(3, 'source'), reservation({ vmId: randomUUID() }))?.code).toBe(ErrorCode.NotAParticipant);
    });
  });

  describe('checkIncomingAddress (the stream goes only to the target host)', () => {
    it('addressHost takes the host part of every form', () => {
      expect(addressHost('10.0.0.2:49152')).toBe('10.0.0.2');
      expect(addressHost('Node-B.example:1')).toBe('node-b.example');
      expect(addressHost('[fd00::2]:4000')).toBe('fd00::2');
      expect(addressHost('fd00::2')).toBe('fd00::2');
      expect(addressHost('node-b')).toBe('node-b');
    });
    it('given the port the target chose on its registered host, then it passes (the port is not compared)', () => {
      expect(checkIncomingAddress(cmd(3, 'source', { incomingAddress: '10.0.0.2:38211' }), '10.0.0.2:49152')).toBeUndefined();
      expect(checkIncomingAddress(cmd(3, 'source'), '10.0.0.2:49152')).toBeUndefined();
    });
    it("given an incomingAddress of the attacker's choosing, then UNTRUSTED_ADDRESS", () => {
      const e = checkIncomingAddress(cmd(3, 'source', { incomingAddress: '203.0.113.9:4444' }), '10.0.0.2:49152');
      expect(e?.code).toBe(ErrorCode.UntrustedAddress);
      expect(e?.message).toMatch(/203\.0\.113\.9:4444 is not on host dst, whose registered migration address is 10\.0\.0\.2:49152/);
    });
  });

  describe('checkTargetResumed (stop-source)', () => {
    it('given the target completed step 7, then it passes; otherwise the source copy stays', () => {
      expect(checkTargetResumed(cmd(8, 'source'), [rec(7, 'target').record])).toBeUndefined();
      expect(checkTargetResumed(cmd(8, 'source'), [rec(6, 'target').record])?.code).toBe(ErrorCode.NotAParticipant);
      expect(checkTargetResumed(cmd(8, 'source'), [rec(7, 'target', 'in-progress').record])?.code).toBe(ErrorCode.NotAParticipant);
    });
  });

  describe('checkCompensation', () => {
    const c = (step: number, role: 'source' | 'target', vmId = vm.id) => ({ migrationId, stepName: stepName(step), role, vmId });
    it('given a step this agent ran for that VM (done, running or failed), then it passes', () => {
      expect(checkCompensation(c(2, 'target'), [rec(2, 'target')])).toBeUndefined();
      expect(checkCompensation(c(3, 'source'), [rec(3, 'source', 'in-progress')])).toBeUndefined();
    });
    it('given no record of that step, or another VM, then NOT_A_PARTICIPANT', () => {
      expect(checkCompensation(c(5, 'source'), [])?.code).toBe(ErrorCode.NotAParticipant);
      expect(checkCompensation(c(5, 'source'), [rec(3, 'source'), rec(4, 'source')])?.code).toBe(ErrorCode.NotAParticipant);
      expect(checkCompensation(c(2, 'target', randomUUID()), [rec(2, 'target')])?.code).toBe(ErrorCode.NotAParticipant);
    });
  });
});
